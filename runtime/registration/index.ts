export * from './beacon-client-ca.js';
export * from './change-journal.js';
export * from './layout.js';
export * from './policies.js';
export * from './register.js';
export * from './tokenreview.js';
export * from './tokenreview-endpoint.js';
