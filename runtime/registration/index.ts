export * from './layout.js';
export * from './register.js';
export * from './tokenreview.js';
