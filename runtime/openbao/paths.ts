/** Pieces of OpenBao API paths, checked: a mount without stray slashes, a KV key, one path segment. */
import { CloudtaserError } from '../core/index.js';

/** One namespace or object name: no '/', whitespace, '+' or '*' (OpenBao's path syntax gives those meaning). */
export const NAMESPACE_SEGMENT = /^[^\s/+*]+$/;

export function trimSlashes(value: string): string {
  return value.replace(/^\/+|\/+$/g, '');
}

export function kvKey(path: string): string {
  const key = trimSlashes(path);
  if (key === '') {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'KV secret path is empty; name the secret, e.g. clusters/<fp>/registered',
    );
  }
  return key;
}

export function assertSegment(name: string): string {
  if (!NAMESPACE_SEGMENT.test(name) || name === '.' || name === '..') {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${JSON.stringify(name.slice(0, 100))} is not a single name; use one path segment without '/', spaces, '+' or '*'`,
    );
  }
  return name;
}
