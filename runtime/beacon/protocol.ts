import { CloudtaserError } from '../core/index.js';

/** The 8 bytes a plain-door client sends first, before its announce frame. */
export const PLAIN_MAGIC = Buffer.from('CTBCN/1\n', 'latin1');
/** First byte of every TLS record carrying a handshake message (the ClientHello). */
export const TLS_HANDSHAKE_BYTE = 0x16;
/** ALPN that selects raw framing on the TLS door; anything else (or none) means HTTP/1.1. */
export const RAW_ALPN = 'cloudtaser-beacon/1';
export const HTTP_ALPN = 'http/1.1';
/** Where the WebSocket door listens on the TLS door's HTTP side. */
export const WEBSOCKET_PATH = '/v1/relay';
export const PROTOCOL_VERSION = 1;
/** Hard ceiling for any control frame body, in either direction. */
export const MAX_FRAME_BYTES = 512;
/** Bytes of the big-endian length that precedes each raw/plain frame. */
export const FRAME_HEADER_BYTES = 2;

export type BeaconRole = 'broker' | 'bridge';
export type BeaconDoor = 'tls' | 'wss' | 'plain';

export interface Announce {
  readonly v: 1;
  readonly role: BeaconRole;
  readonly hash: string;
}

/** What the beacon sends to a client before the byte pipe starts. */
export type ControlMessage =
  /** `keepaliveMs`: how often the beacon pings while the connection waits (absent from beacons before it). */
  | { readonly t: 'waiting'; readonly keepaliveMs?: number }
  | { readonly t: 'ping' }
  | { readonly t: 'paired' }
  /**
   * The replica is shutting down: it pairs nothing more, and cuts the relays it still carries after
   * `retryAfterMs`. Sent to every waiting connection (and to announces that arrive meanwhile), then the connection
   * closes. Clients that know it wait elsewhere and leave this replica alone until then; older clients ignore it.
   */
  | { readonly t: 'draining'; readonly retryAfterMs: number }
  | { readonly t: 'error'; readonly code: string; readonly reason: string };

/**
 * Longest pause a `draining` message can ask of a client. A beacon can already refuse or cut every connection;
 * the bound keeps a hostile or misconfigured one from making a bridge leave a replica alone for longer.
 */
export const MAX_DRAIN_RETRY_AFTER_MS = 120_000;
/** What a client assumes when a `draining` message carries no usable `retryAfterMs`. */
export const DEFAULT_DRAIN_RETRY_AFTER_MS = 30_000;

const HASH = /^[0-9a-f]{64}$/;

export function isRoomHash(value: unknown): value is string {
  return typeof value === 'string' && HASH.test(value);
}

/** Why an announce was refused; the label doubles as the rejection metric's `reason`. */
export type AnnounceFault = 'announce_malformed' | 'bad_version' | 'bad_role' | 'bad_hash';

export class AnnounceError extends Error {
  constructor(
    readonly fault: AnnounceFault,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Validates an announce body (the JSON bytes, no length prefix). Unknown extra keys are refused so a
 * future version cannot be half-understood by an old beacon.
 */
export function parseAnnounce(body: Uint8Array): Announce {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    throw new AnnounceError('announce_malformed', 'announce is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AnnounceError('announce_malformed', 'announce is not a JSON object');
  }
  const record = value as Record<string, unknown>;
  if (record.v !== PROTOCOL_VERSION) {
    throw new AnnounceError(
      'bad_version',
      `announce version ${clip(String(JSON.stringify(record.v)))} is not supported; use 1`,
    );
  }
  if (record.role !== 'broker' && record.role !== 'bridge') {
    throw new AnnounceError('bad_role', 'announce role must be "broker" or "bridge"');
  }
  if (!isRoomHash(record.hash)) {
    throw new AnnounceError('bad_hash', 'announce hash must be 64 lower-case hex characters');
  }
  for (const key of Object.keys(record)) {
    if (key !== 'v' && key !== 'role' && key !== 'hash') {
      throw new AnnounceError('announce_malformed', 'announce has an unknown field');
    }
  }
  return { v: PROTOCOL_VERSION, role: record.role, hash: record.hash };
}

export function encodeJson(value: Announce | ControlMessage): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** One raw/plain frame: 2-byte big-endian length, then the JSON body. */
export function encodeFrame(value: Announce | ControlMessage): Buffer {
  let body = encodeJson(value);
  // An error reason may quote what a peer sent; shorten it rather than fail to tell the peer why it was refused.
  if (body.length > MAX_FRAME_BYTES && 'reason' in value && typeof value.reason === 'string') {
    body = encodeJson({ ...value, reason: clip(value.reason, 200) });
  }
  if (body.length > MAX_FRAME_BYTES) {
    throw new CloudtaserError(
      'CT_INTERNAL',
      `beacon frame of ${body.length} bytes exceeds ${MAX_FRAME_BYTES}`,
    );
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt16BE(body.length, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Parses a control message sent by the beacon. Unknown `t` values come back as `undefined` so newer beacons
 * can add messages without breaking older clients; malformed JSON throws.
 */
export function parseControl(body: Uint8Array): ControlMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    throw new CloudtaserError('CT_BEACON_PROTOCOL', 'the beacon sent a control frame that is not JSON', {
      cause: err,
    });
  }
  if (typeof value !== 'object' || value === null) {
    throw new CloudtaserError(
      'CT_BEACON_PROTOCOL',
      'the beacon sent a control frame that is not a JSON object',
    );
  }
  const record = value as Record<string, unknown>;
  switch (record.t) {
    case 'waiting':
      return Number.isSafeInteger(record.keepaliveMs) && (record.keepaliveMs as number) > 0
        ? { t: 'waiting', keepaliveMs: record.keepaliveMs as number }
        : { t: 'waiting' };
    case 'ping':
    case 'paired':
      return { t: record.t };
    case 'draining':
      return {
        t: 'draining',
        retryAfterMs:
          Number.isSafeInteger(record.retryAfterMs) && (record.retryAfterMs as number) >= 0
            ? Math.min(record.retryAfterMs as number, MAX_DRAIN_RETRY_AFTER_MS)
            : DEFAULT_DRAIN_RETRY_AFTER_MS,
      };
    case 'error':
      return {
        t: 'error',
        code: typeof record.code === 'string' ? record.code.slice(0, 64) : 'CT_BEACON_REJECTED',
        reason: typeof record.reason === 'string' ? record.reason.slice(0, 400) : '',
      };
    default:
      return undefined;
  }
}

/** Shortens peer-supplied text quoted in a reason, so a hostile value cannot inflate a frame or a log line. */
function clip(text: string, max = 40): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
