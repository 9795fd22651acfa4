/**
 * The secret files a pod asks for (`cloudtaser.io/secret-<file>: <path>`): the rules the webhook checks the
 * annotations with, and the injected init container checks `CLOUDTASER_SECRETS` with again, since it writes files
 * named after them (one rule, so neither side accepts what the other refuses).
 */
import { CloudtaserError } from '../core/errors.js';

/** A file name in the secrets volume (`<file>.json`): no path separator, no dot segment, at most 63 characters. */
export function isSecretFileName(file: string): boolean {
  return /^[a-z0-9]([-a-z0-9_.]{0,62})$/.test(file);
}

/** A path under the `secret` KV v2 mount such as `app/db`: plain segments, no `.`/`..`, at most 512 characters. */
export function isKvPath(value: string): boolean {
  return (
    value.length > 0 &&
    value.length <= 512 &&
    value.split('/').every((s) => s !== '' && s !== '.' && s !== '..' && /^[A-Za-z0-9._@=+,:-]+$/.test(s))
  );
}

/** File name -> KV path, as `CLOUDTASER_SECRETS` carries it; CT_INVALID_ARGUMENT for anything else. */
export function parseSecretFiles(value: unknown, what = 'CLOUDTASER_SECRETS'): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${what} must be a JSON object of file name to secret path, e.g. {"db":"app/db"} (the webhook sets it from the pod's cloudtaser.io/secret-<file> annotations)`,
    );
  const secrets: Record<string, string> = {};
  for (const [file, path] of Object.entries(value)) {
    if (!isSecretFileName(file) || typeof path !== 'string' || !isKvPath(path))
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `${what} entry ${JSON.stringify(file)} must name a file ([a-z0-9-_.], no path) and a path under the secret mount such as app/db`,
      );
    secrets[file] = path;
  }
  return secrets;
}
