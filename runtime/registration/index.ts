export * from './change-journal.js';
export * from './layout.js';
export * from './register.js';
