export * from './layout.js';
export * from './policies.js';
export * from './register.js';
