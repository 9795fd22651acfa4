export * from './backoff.js';
export * from './errors.js';
export * from './hashes.js';
export * from './log.js';
export * from './rules.js';
