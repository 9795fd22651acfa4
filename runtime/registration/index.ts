export * from './layout.js';
export * from './register.js';
