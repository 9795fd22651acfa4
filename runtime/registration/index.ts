export * from './beacon-client-ca.js';
export * from './layout.js';
export * from './register.js';
