/**
 * The operational room's mutual TLS, both ends: the broker is the TLS server with its CA-issued certificate,
 * the bridge the TLS client with its client certificate; each trusts ONLY the cluster CA. On top runs the
 * multiplexer, with `GET /v1/tunnel/info` served on both ends (issue 3's round trip).
 */
import { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { type SecureContext, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { CloudtaserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { isIssuedBy } from '../pki/index.js';
import { createTunnelMux, type TunnelHandler, type TunnelLimits, type TunnelMux } from './mux.js';
import { acceptTls, awaitSecure, INNER_TLS_MIN_VERSION, TUNNEL_ALPN } from './tls.js';

export const TUNNEL_INFO_PATH = '/v1/tunnel/info';
/** The tunnel protocol this version speaks, announced in the info answer: the one version signal of the tunnel. */
const TUNNEL_PROTOCOL = 1;

export interface TunnelInfo {
  readonly role: 'broker' | 'bridge';
  readonly protocol: typeof TUNNEL_PROTOCOL;
  readonly since: string;
}

export interface TunnelSessionOptions {
  readonly caCertPem: string;
  readonly certPem: string;
  /** PEM, in memory only. */
  readonly keyPem: string;
  readonly handshakeTimeoutMs: number;
  /**
   * The bridge end's TLS context built from `caCertPem`, `certPem` and `keyPem` once, for every tunnel of the
   * cluster (parsing them per connection is most of a reconnect's CPU on a bridge serving many clusters).
   * @default built per connection
   */
  readonly secureContext?: SecureContext;
  /** `caCertPem` already parsed. @default parsed per connection */
  readonly caCertificate?: X509Certificate;
  readonly limits?: Partial<TunnelLimits>;
  /**
   * A further check of the peer's (already CA-verified) certificate; returns why it is refused, or undefined.
   * The bridge uses it to accept only the broker key the latest bootstrap was signed for.
   */
  readonly acceptPeer?: (peer: X509Certificate) => string | undefined;
  /** Serves the peer's requests other than the info path. @default 404 */
  readonly handler?: TunnelHandler;
  readonly signal?: AbortSignal;
  readonly logger: Logger;
}

export interface TunnelSession {
  readonly mux: TunnelMux;
  /** What the peer answered to GET /v1/tunnel/info. */
  readonly peerInfo: TunnelInfo;
}

/** Broker end: TLS server over the paired stream. */
export async function acceptTunnel(stream: Duplex, options: TunnelSessionOptions): Promise<TunnelSession> {
  const socket = await acceptTls(
    stream,
    {
      cert: options.certPem,
      key: options.keyPem,
      ca: [options.caCertPem],
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [TUNNEL_ALPN],
    },
    {
      timeoutMs: options.handshakeTimeoutMs,
      code: 'CT_TUNNEL_CLOSED',
      what: 'the tunnel mutual TLS handshake',
      signal: options.signal,
    },
  );
  return establish(socket, 'broker', options);
}

/** Bridge end: TLS client over the paired stream (with `secureContext` when given, else the PEMs). */
export function openTunnel(stream: Duplex, options: TunnelSessionOptions): Promise<TunnelSession> {
  const socket = tlsConnect({
    socket: stream,
    ...(options.secureContext
      ? { secureContext: options.secureContext }
      : { cert: options.certPem, key: options.keyPem, ca: [options.caCertPem] }),
    rejectUnauthorized: true,
    minVersion: INNER_TLS_MIN_VERSION,
    ALPNProtocols: [TUNNEL_ALPN],
    // The broker certificate names no host: what identifies it is the cluster CA's signature.
    checkServerIdentity: () => undefined,
  });
  return establish(socket, 'bridge', options, stream);
}

async function establish(
  socket: TLSSocket,
  role: 'broker' | 'bridge',
  options: TunnelSessionOptions,
  transport?: Duplex,
): Promise<TunnelSession> {
  if (role === 'bridge') {
    await awaitSecure(socket, {
      timeoutMs: options.handshakeTimeoutMs,
      code: 'CT_TUNNEL_CLOSED',
      what: 'the tunnel mutual TLS handshake',
      signal: options.signal,
      transport,
    });
  }
  // Belt and braces on top of OpenSSL's verification: the peer leaf must be issued by exactly this CA.
  const peer = socket.getPeerX509Certificate();
  const ca = options.caCertificate ?? new X509Certificate(options.caCertPem);
  if (!socket.authorized || !peer || !isIssuedBy(peer, ca)) {
    socket.destroy();
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      `the tunnel peer's certificate is not issued by the cluster CA (${String(socket.authorizationError ?? 'no certificate')})`,
    );
  }
  const refusal = options.acceptPeer?.(peer);
  if (refusal !== undefined) {
    socket.destroy();
    throw new CloudtaserError('CT_PKI_INVALID_CERT', `the tunnel peer's certificate is refused: ${refusal}`);
  }
  const since = new Date().toISOString();
  const info: TunnelInfo = { role, protocol: TUNNEL_PROTOCOL, since };
  const handler = options.handler;
  const mux = createTunnelMux(socket, {
    side: role === 'bridge' ? 'initiator' : 'acceptor',
    limits: options.limits,
    logger: options.logger,
    handler: async (request, context) => {
      if (request.method === 'GET' && request.path === TUNNEL_INFO_PATH) {
        return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(info) };
      }
      if (handler) return handler(request, context);
      return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };
    },
  });
  try {
    const response = await mux.request({ method: 'GET', path: TUNNEL_INFO_PATH }, undefined, {
      timeoutMs: options.handshakeTimeoutMs,
      signal: options.signal,
    });
    const peerInfo = JSON.parse(response.body.toString('utf8')) as TunnelInfo;
    // Fields the answer carries beyond TunnelInfo are a later version's additions, and fine.
    if (
      response.status === 200 &&
      Number.isSafeInteger(peerInfo?.protocol) &&
      peerInfo.protocol !== TUNNEL_PROTOCOL
    )
      throw otherProtocol(role, peerInfo.protocol);
    if (response.status !== 200 || peerInfo?.protocol !== TUNNEL_PROTOCOL || peerInfo.role === role) {
      throw new CloudtaserError(
        'CT_TUNNEL_PROTOCOL',
        `the tunnel peer answered ${TUNNEL_INFO_PATH} with status ${response.status} and an unusable body`,
      );
    }
    return { mux, peerInfo };
  } catch (err) {
    mux.close({ code: 'CT_TUNNEL_PROTOCOL', reason: 'tunnel info round trip failed' });
    if (err instanceof SyntaxError)
      throw new CloudtaserError(
        'CT_TUNNEL_PROTOCOL',
        `the tunnel peer's ${TUNNEL_INFO_PATH} answer is not JSON`,
      );
    throw err;
  }
}

/** CT_TUNNEL_PROTOCOL for a peer of another version: which side is behind is what an operator needs to know. */
function otherProtocol(role: 'broker' | 'bridge', peerProtocol: number): CloudtaserError {
  const peerRole = role === 'broker' ? 'bridge' : 'broker';
  const older = peerProtocol > TUNNEL_PROTOCOL ? role : peerRole;
  return new CloudtaserError(
    'CT_TUNNEL_PROTOCOL',
    `the ${peerRole} speaks tunnel protocol ${peerProtocol}, this ${role} speaks ${TUNNEL_PROTOCOL}: upgrade the ${older}`,
    { details: { protocol: TUNNEL_PROTOCOL, peerProtocol } },
  );
}
