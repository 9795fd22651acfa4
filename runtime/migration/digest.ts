import { createHash } from 'node:crypto';

/** SHA-256 of the data with sorted keys: what both ends compare, so secret values need not travel back. */
export function secretDataDigest(data: Readonly<Record<string, unknown>>): string {
  const sorted = Object.keys(data)
    .sort()
    .map((key) => [key, data[key]]);
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex');
}
