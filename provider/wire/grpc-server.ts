/**
 * The smallest gRPC server go-plugin needs, on node:http2: unary calls and one server stream, length-prefixed
 * protobuf messages, status in trailers. It replaces @grpc/grpc-js in the provider because Terraform starts
 * 3-5 provider processes per command and grpc-js alone cost ~60 ms of module loading in each (measured with
 * `provider.handshake_ms`); node:http2 is built in.
 *
 * What it follows (gRPC over HTTP/2, grpc/grpc doc/PROTOCOL-HTTP2.md):
 * - request: POST to /<package>.<Service>/<Method>, content-type application/grpc[+proto]; the body is messages
 *   framed as 1 byte compressed-flag, 4 bytes big-endian length, then the bytes;
 * - response: :status 200 and content-type application/grpc, the framed message(s), then trailers with
 *   grpc-status and a percent-encoded grpc-message; a call that fails before any message gets a
 *   "trailers-only" response (grpc-status in the headers, stream ended);
 * - unknown methods answer UNIMPLEMENTED, which go-plugin tolerates for GRPCBroker and GRPCStdio;
 * - compressed messages are refused (Terraform's client never compresses).
 */

import { X509Certificate } from 'node:crypto';
import {
  constants,
  createSecureServer,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { Msg } from './protobuf.js';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
} as const;

/** An error a handler throws to choose the status code. */
export class GrpcError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'GrpcError';
  }
}

export interface UnaryMethod {
  readonly decode: (bytes: Uint8Array) => Msg;
  readonly encode: (message: Msg) => Uint8Array;
  readonly handle: (request: Msg) => Promise<Msg> | Msg;
}

/** A server-streaming method that never sends: the stream stays open until the server closes. */
export interface IdleStreamMethod {
  readonly idleStream: true;
}

export interface GrpcServerOptions {
  /** Full method path -> implementation. */
  readonly methods: ReadonlyMap<string, UnaryMethod | IdleStreamMethod>;
  /** Largest request message accepted. */
  readonly maxMessageBytes: number;
  /**
   * TLS that admits exactly one client certificate (PEM), as go-plugin's AutoMTLS does with Terraform's
   * per-process certificate; omitted = plaintext HTTP/2 (h2c, prior knowledge).
   */
  readonly tls?: { readonly key: string; readonly cert: string; readonly clientCert: string };
  readonly onError?: (event: string, fields: Record<string, unknown>) => void;
}

export interface GrpcServer {
  /** Listens on a unix socket path, or on 127.0.0.1:port (0 = any free port); resolves the address. */
  listen(target: { path: string } | { port: number }): Promise<string>;
  /** Ends open streams with status OK, lets answered calls flush, then closes every connection. */
  close(graceMs?: number): Promise<void>;
}

const HEADER_BYTES = 5;

/** grpc-message is percent-encoded: anything outside printable ASCII, and '%' itself. */
export function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, HEADER_BYTES);
  return out;
}

export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const sessions = new Set<Http2Session>();
  const idleStreams = new Set<ServerHttp2Stream>();
  const onError = options.onError ?? (() => {});
  const settings = { initialWindowSize: 1 << 20 };
  let server: Http2Server;
  let pinnedClientCert: Buffer | undefined;
  if (options.tls) {
    pinnedClientCert = new X509Certificate(options.tls.clientCert).raw;
    // `ca: []`, an empty trust store: with no `ca` Node loads its whole root store into the context, and with
    // the client certificate as `ca` it builds a private copy of it; either parses ~150 certificates, about
    // 22 ms of every provider start (measured; Terraform starts 4 per apply). No chain is checked here: the
    // client certificate is pinned instead (below). The TLS handshake proves the client holds its key
    // (CertificateVerify is checked regardless), and only the one certificate Terraform handed us is
    // accepted, which is stricter than a chain check.
    const secure: SecureContextOptions & Record<string, unknown> = {
      ca: [],
      key: options.tls.key,
      cert: options.tls.cert,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['h2'],
    };
    server = createSecureServer({ ...secure, allowHTTP1: false, settings, maxSessionMemory: 512 });
  } else {
    server = createServer({ settings, maxSessionMemory: 512 });
  }

  server.on('session', (session) => {
    if (pinnedClientCert) {
      // Emitted before the session reads its first frame, so a refused client never reaches a handler.
      const peer = (session.socket as TLSSocket).getPeerCertificate?.();
      if (!peer?.raw || !pinnedClientCert.equals(peer.raw)) {
        onError('grpc_client_refused', {
          reason: peer?.raw ? 'unexpected client certificate' : 'no client certificate',
        });
        session.destroy();
        return;
      }
    }
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', (err) => onError('grpc_session_error', { error: err.message }));
  });
  // A client that fails the TLS handshake (no or wrong client certificate) never becomes a session.
  server.on('tlsClientError', (err) => onError('grpc_tls_refused', { error: err.message }));

  server.on('stream', (stream, headers) => {
    stream.on('error', (err) => onError('grpc_stream_error', { error: err.message }));
    const method = options.methods.get(String(headers[':path'] ?? ''));
    if (!isGrpcRequest(headers)) {
      stream.respond({ ':status': 415, 'content-type': 'text/plain' }, { endStream: true });
      return;
    }
    if (!method) {
      trailersOnly(
        stream,
        GrpcStatus.UNIMPLEMENTED,
        `${String(headers[':path'])} is not implemented by this provider`,
      );
      return;
    }
    if ('idleStream' in method) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(GrpcStatus.OK) }));
      idleStreams.add(stream);
      stream.on('close', () => idleStreams.delete(stream));
      stream.resume();
      return;
    }
    readUnaryRequest(stream, options.maxMessageBytes).then(
      async (body) => {
        if (body instanceof GrpcError) return trailersOnly(stream, body.status, body.message);
        let response: Uint8Array;
        try {
          response = method.encode(await method.handle(method.decode(body)));
        } catch (err) {
          const status = err instanceof GrpcError ? err.status : GrpcStatus.INTERNAL;
          return trailersOnly(stream, status, (err as Error).message);
        }
        if (stream.destroyed || stream.closed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(GrpcStatus.OK) }));
        stream.end(frame(response));
      },
      (err: Error) => onError('grpc_request_failed', { error: err.message }),
    );
  });

  return {
    listen(target) {
      return new Promise((resolve, reject) => {
        const fail = (err: Error) => reject(err);
        server.once('error', fail);
        const done = () => {
          server.off('error', fail);
          const address = server.address();
          resolve(typeof address === 'string' ? address : `127.0.0.1:${address?.port}`);
        };
        if ('path' in target) server.listen(target.path, done);
        else server.listen(target.port, '127.0.0.1', done);
      });
    },
    close(graceMs = 250) {
      for (const stream of idleStreams) if (!stream.closed) stream.end();
      idleStreams.clear();
      return new Promise((resolve) => {
        const force = setTimeout(() => {
          for (const session of sessions) session.destroy();
          resolve();
        }, graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        // Stop accepting streams and let answered ones flush (GOAWAY), as grpc-go's GracefulStop does.
        for (const session of sessions) session.close();
      });
    },
  };
}

function isGrpcRequest(headers: IncomingHttpHeaders): boolean {
  const type = String(headers['content-type'] ?? '');
  return (
    headers[':method'] === 'POST' &&
    (type === 'application/grpc' ||
      type.startsWith('application/grpc+') ||
      type.startsWith('application/grpc;'))
  );
}

function trailersOnly(stream: ServerHttp2Stream, status: number, message: string): void {
  if (stream.destroyed || stream.closed || stream.headersSent) {
    if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(status),
      'grpc-message': encodeGrpcMessage(message),
    },
    { endStream: true },
  );
}

/** Collects exactly one framed message; a GrpcError describes a request we refuse. */
function readUnaryRequest(
  stream: ServerHttp2Stream,
  maxMessageBytes: number,
): Promise<Uint8Array | GrpcError> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const finish = (value: Uint8Array | GrpcError) => {
      if (settled) return;
      settled = true;
      resolve(value);
    };
    stream.on('data', (chunk: Buffer) => {
      if (settled) return;
      received += chunk.length;
      if (received > maxMessageBytes + HEADER_BYTES) {
        finish(new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `request larger than ${maxMessageBytes} bytes`));
        stream.resume();
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => {
      const body = Buffer.concat(chunks, received);
      if (body.length < HEADER_BYTES)
        return finish(new GrpcError(GrpcStatus.INTERNAL, 'request without a message'));
      if (body[0] !== 0)
        return finish(new GrpcError(GrpcStatus.UNIMPLEMENTED, 'compressed messages are not supported'));
      const length = body.readUInt32BE(1);
      if (length !== body.length - HEADER_BYTES) {
        return finish(new GrpcError(GrpcStatus.INTERNAL, 'request body is not exactly one message'));
      }
      finish(body.subarray(HEADER_BYTES));
    });
    stream.on('aborted', () => {
      if (!settled) {
        settled = true;
        reject(new Error('client cancelled the call'));
      }
    });
  });
}
