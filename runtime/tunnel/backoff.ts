/** The tunnel ends pace their redials with the project's one backoff (core/backoff.ts). */
export { type Backoff, type BackoffOptions, createBackoff, sleep } from '../core/backoff.js';
