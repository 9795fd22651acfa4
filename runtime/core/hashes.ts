import { createHash } from 'node:crypto';
import { parseFingerprint } from './rules.js';

/** Prefix that turns a fingerprint into the init room key; changing it breaks every deployed broker. */
const INIT_HASH_PREFIX = 'cloudtaser-init:';

/** The first 8 characters of the fingerprint: the cluster's OpenBao namespace name under the root. */
export function fingerprintPrefix(fingerprint: string): string {
  return parseFingerprint(fingerprint).slice(0, 8);
}

/** Init room key: SHA-256("cloudtaser-init:" + fingerprint), lower-case hex. */
export function initHash(fingerprint: string): string {
  return sha256Hex(INIT_HASH_PREFIX + parseFingerprint(fingerprint));
}

/** Operational room key: SHA-256 of the cluster CA certificate's DER, lower-case hex. */
export function operationalHash(caCertDer: Uint8Array): string {
  return sha256Hex(caCertDer);
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A hash shortened for logs: enough to correlate, never enough to join a room. */
export function hashPrefix(hash: string): string {
  return hash.slice(0, 12);
}

const UUID_ANYWHERE = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const HEX64_ANYWHERE = /\b[0-9a-f]{64}\b/gi;

/**
 * Text fit for a status endpoint: every fingerprint (a UUID) shortened to its 8-character prefix and every room
 * hash or CA hash (64 hex) to 12 characters. A probe port is reachable by more than its owner; the prefixes are
 * enough to act on (`source status`, the namespace name) and give nobody a room to wait in.
 */
export function redactIdentifiers(text: string): string {
  return text
    .replace(UUID_ANYWHERE, (uuid) => `${uuid.slice(0, 8)}…`)
    .replace(HEX64_ANYWHERE, (hash) => `${hash.slice(0, 12)}…`);
}
