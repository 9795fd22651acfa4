/**
 * Bootstrap messages, exchanged once inside the init room's end-to-end TLS:
 *   broker -> bridge  {v:1, type:'bootstrap.request',  fingerprint, csr[, podApiCsr][, attestation]}
 *   bridge -> broker  {v:1, type:'bootstrap.accepted', caCert, brokerCert}
 *                  or {v:1, type:'bootstrap.refused',  code, reason}
 * Each message is a 4-byte big-endian length and UTF-8 JSON of at most MAX_BOOTSTRAP_MESSAGE_BYTES. Anything
 * malformed, oversized, unknown, duplicated or late is CT_BOOTSTRAP_PROTOCOL.
 */
import type { Duplex } from 'node:stream';
import { timerDelay } from '../core/backoff.js';
import { CloudtaserError, type ErrorCode, ErrorCodes } from '../core/errors.js';
import { isFingerprint } from '../core/rules.js';

export const BOOTSTRAP_VERSION = 1;
/**
 * A P-256 CSR is ~600 bytes of PEM, a certificate ~800, a service-account token 1-2 KiB: 16 KiB leaves room
 * for two CSRs and the largest token we accept, and still bounds memory.
 */
export const MAX_BOOTSTRAP_MESSAGE_BYTES = 16 * 1024;
/** Largest attestation token accepted in a request (the verifier's own bound). */
export const MAX_ATTESTATION_TOKEN_CHARS = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const LENGTH_BYTES = 4;
const MAX_PEM_CHARS = 4096;
const MAX_REASON_CHARS = 1000;

export interface BootstrapRequest {
  readonly v: 1;
  readonly type: 'bootstrap.request';
  /** The cluster fingerprint (kube-system UID); travels only inside the end-to-end TLS. */
  readonly fingerprint: string;
  /** PEM PKCS#10 request for a key that never leaves the broker. */
  readonly csr: string;
  /** Optional second request, for the pod API's serving key; its DNS names are the operator Service's. */
  readonly podApiCsr?: string;
  /**
   * Optional service-account token of the operator, minted by the cluster's API server with audience
   * `cloudtaser-bootstrap:<sha256 of the CSR's public key>` (and one for `podApiCsr`'s key when present).
   */
  readonly attestation?: string;
}

export interface BootstrapAccepted {
  readonly v: 1;
  readonly type: 'bootstrap.accepted';
  readonly caCert: string;
  readonly brokerCert: string;
  /** The pod API serving certificate, present when the request carried `podApiCsr`. */
  readonly podApiCert?: string;
}

export interface BootstrapRefused {
  readonly v: 1;
  readonly type: 'bootstrap.refused';
  readonly code: ErrorCode;
  readonly reason: string;
}

export type BootstrapMessage = BootstrapRequest | BootstrapAccepted | BootstrapRefused;
export type BootstrapMessageType = BootstrapMessage['type'];

const FIELDS: Record<BootstrapMessageType, readonly string[]> = {
  'bootstrap.request': ['v', 'type', 'fingerprint', 'csr', 'podApiCsr', 'attestation'],
  'bootstrap.accepted': ['v', 'type', 'caCert', 'brokerCert', 'podApiCert'],
  'bootstrap.refused': ['v', 'type', 'code', 'reason'],
};

export function encodeBootstrapMessage(message: BootstrapMessage): Buffer {
  // Round-trip through the validator so we never send what our own peer would refuse.
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  decodeBootstrapMessage(body);
  const frame = Buffer.allocUnsafe(LENGTH_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, LENGTH_BYTES);
  return frame;
}

/** Validates one message body (the JSON bytes after the length). */
export function decodeBootstrapMessage(body: Uint8Array): BootstrapMessage {
  if (body.byteLength > MAX_BOOTSTRAP_MESSAGE_BYTES) {
    throw protocol(`bootstrap message of ${body.byteLength} bytes exceeds ${MAX_BOOTSTRAP_MESSAGE_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    throw protocol('bootstrap message is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw protocol('bootstrap message is not a JSON object');
  const record = value as Record<string, unknown>;
  if (record.v !== BOOTSTRAP_VERSION) {
    throw protocol(
      `bootstrap message version ${JSON.stringify(record.v)?.slice(0, 20)} is not supported; this end speaks ${BOOTSTRAP_VERSION}`,
    );
  }
  const type = record.type;
  if (typeof type !== 'string' || !Object.hasOwn(FIELDS, type))
    throw protocol('bootstrap message has an unknown type');
  const allowed = FIELDS[type as BootstrapMessageType];
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key))
      throw protocol(`bootstrap ${type} has an unknown field ${JSON.stringify(key.slice(0, 40))}`);
  }
  switch (type as BootstrapMessageType) {
    case 'bootstrap.request':
      if (typeof record.fingerprint !== 'string' || !isFingerprint(record.fingerprint)) {
        throw protocol('bootstrap request fingerprint must be a lower-case UUID');
      }
      return {
        v: 1,
        type: 'bootstrap.request',
        fingerprint: record.fingerprint,
        csr: pemField(record.csr, 'CERTIFICATE REQUEST', 'csr'),
        ...(record.podApiCsr === undefined
          ? {}
          : { podApiCsr: pemField(record.podApiCsr, 'CERTIFICATE REQUEST', 'podApiCsr') }),
        ...(record.attestation === undefined ? {} : { attestation: tokenField(record.attestation) }),
      };
    case 'bootstrap.accepted':
      return {
        v: 1,
        type: 'bootstrap.accepted',
        caCert: pemField(record.caCert, 'CERTIFICATE', 'caCert'),
        brokerCert: pemField(record.brokerCert, 'CERTIFICATE', 'brokerCert'),
        ...(record.podApiCert === undefined
          ? {}
          : { podApiCert: pemField(record.podApiCert, 'CERTIFICATE', 'podApiCert') }),
      };
    case 'bootstrap.refused':
      if (typeof record.code !== 'string' || !Object.hasOwn(ErrorCodes, record.code))
        throw protocol('bootstrap refusal has an unknown code');
      if (typeof record.reason !== 'string' || record.reason.length > MAX_REASON_CHARS) {
        throw protocol(`bootstrap refusal reason must be a string of at most ${MAX_REASON_CHARS} characters`);
      }
      return { v: 1, type: 'bootstrap.refused', code: record.code as ErrorCode, reason: record.reason };
  }
}

/**
 * Reads exactly one message from `stream` within `timeoutMs`. The peer sends one message and then waits,
 * so any extra byte is a protocol error (it would be a replayed or smuggled message).
 */
export function readBootstrapMessage(
  stream: Duplex,
  options: {
    readonly timeoutMs: number;
    readonly signal?: AbortSignal;
    readonly expect: readonly BootstrapMessageType[];
  },
): Promise<BootstrapMessage> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let buffered = 0;
    let expected: number | undefined;
    const cleanup = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      options.signal?.removeEventListener('abort', onAbort);
      // Without a 'data' listener a flowing stream would drop bytes; pause so a later reader sees them.
      stream.pause();
    };
    const fail = (err: CloudtaserError) => {
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      buffered += chunk.length;
      if (expected === undefined && buffered >= LENGTH_BYTES) {
        expected = Buffer.concat(chunks).readUInt32BE(0);
        if (expected > MAX_BOOTSTRAP_MESSAGE_BYTES) {
          fail(
            protocol(
              `the peer announced a bootstrap message of ${expected} bytes; the limit is ${MAX_BOOTSTRAP_MESSAGE_BYTES}`,
            ),
          );
          return;
        }
      }
      if (expected === undefined || buffered < LENGTH_BYTES + expected) return;
      if (buffered > LENGTH_BYTES + expected) {
        fail(protocol('the peer sent more than one bootstrap message'));
        return;
      }
      const all = Buffer.concat(chunks);
      try {
        const message = decodeBootstrapMessage(all.subarray(LENGTH_BYTES));
        if (!options.expect.includes(message.type))
          throw protocol(`unexpected bootstrap ${message.type}; expected ${options.expect.join(' or ')}`);
        cleanup();
        resolve(message);
      } catch (err) {
        fail(err as CloudtaserError);
      }
    };
    const onEnd = () =>
      fail(protocol(`the peer closed before sending a whole bootstrap message (${buffered} bytes received)`));
    const onError = (err: Error) =>
      fail(
        new CloudtaserError('CT_BOOTSTRAP_PROTOCOL', `the bootstrap connection failed: ${err.message}`, {
          cause: err,
        }),
      );
    const onAbort = () => fail(new CloudtaserError('CT_CANCELLED', 'the bootstrap was cancelled'));
    const timer = setTimeout(
      () =>
        fail(
          protocol(`no whole bootstrap message within ${options.timeoutMs} ms (${buffered} bytes received)`),
        ),
      timerDelay(options.timeoutMs),
    );
    if (options.signal?.aborted) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
  });
}

export function writeBootstrapMessage(stream: Duplex, message: BootstrapMessage): void {
  stream.write(encodeBootstrapMessage(message));
}

function pemField(value: unknown, label: string, field: string): string {
  const pattern = new RegExp(
    `^-----BEGIN ${label}-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END ${label}-----\\r?\\n?$`,
  );
  if (typeof value !== 'string' || value.length > MAX_PEM_CHARS || !pattern.test(value)) {
    throw protocol(
      `bootstrap field ${field} must be one PEM ${label} block of at most ${MAX_PEM_CHARS} characters`,
    );
  }
  return value;
}

function tokenField(value: unknown): string {
  if (typeof value !== 'string' || value.length > MAX_ATTESTATION_TOKEN_CHARS || !COMPACT_JWS.test(value)) {
    throw protocol(
      `bootstrap field attestation must be one compact JWS (three base64url parts) of at most ${MAX_ATTESTATION_TOKEN_CHARS} characters`,
    );
  }
  return value;
}

function protocol(message: string): CloudtaserError {
  return new CloudtaserError('CT_BOOTSTRAP_PROTOCOL', message);
}
