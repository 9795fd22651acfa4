/**
 * A small symmetric request multiplexer for the operational tunnel. Either end sends requests and handles the
 * other's: the initiator opens odd stream ids, the acceptor even ones, so ids never collide. Every bound is
 * enforced on input; a malformed frame ends the whole tunnel (CT_TUNNEL_PROTOCOL), a request over a bound only
 * resets its own stream.
 *
 * Per stream: requester OPEN(head) DATA* END; responder RESPONSE(head) DATA* END; either side may RESET.
 * Stream 0 carries PING/PONG (liveness) and GOAWAY (orderly close with a reason).
 *
 * A GOAWAY with the code CT_TUNNEL_DRAINED is a promise: its sender had no stream in flight either way when it
 * sent it and reads nothing after it, so every request the receiver has not had an answer to was never processed
 * and may be sent again on another tunnel, whatever its method (closeWhenIdle sends it; the bridge does on
 * shutdown). While it waits for that moment, a closing end refuses each new request with a RESET of the same code,
 * unprocessed, which also tells the peer to send the next ones elsewhere (`draining`). A peer that predates the code reads it as CT_TUNNEL_PROTOCOL and simply reconnects, as before.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { MAX_TIMER_MS } from '../core/backoff.js';
import { CloudtaserError, type ErrorCode, isCloudtaserError } from '../core/errors.js';
import { type Logger, moduleLogger } from '../core/log.js';
import {
  DATA_CHUNK_BYTES,
  encodeFrame,
  encodeFrames,
  type Frame,
  FrameDecoder,
  FrameType,
  type FrameTypeValue,
  frameTypeName,
} from './frames.js';
import {
  decodeReason,
  decodeRequestHead,
  decodeResponseHead,
  encodeReason,
  encodeRequestHead,
  encodeResponseHead,
  type RequestHead,
  type ResetReason,
  type TunnelHeaders,
} from './heads.js';

export interface TunnelLimits {
  /** Largest frame payload accepted; never below the 16 KiB senders use for DATA. */
  readonly maxFramePayloadBytes: number;
  /** Largest JSON head (OPEN / RESPONSE payload). */
  readonly maxHeadBytes: number;
  /** Largest request or response body. */
  readonly maxBodyBytes: number;
  /** Streams in flight per direction (opened by us, opened by the peer). */
  readonly maxConcurrentStreams: number;
  /** How long `request()` waits for a whole response unless the call says otherwise. */
  readonly requestTimeoutMs: number;
  /** Interval of liveness pings; 0 turns them off. */
  readonly pingIntervalMs: number;
  /** A ping without a pong for this long closes the tunnel. */
  readonly pingTimeoutMs: number;
}

export const DEFAULT_TUNNEL_LIMITS: TunnelLimits = Object.freeze({
  maxFramePayloadBytes: 64 * 1024,
  maxHeadBytes: 16 * 1024,
  maxBodyBytes: 1024 * 1024,
  maxConcurrentStreams: 32,
  requestTimeoutMs: 30_000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 10_000,
});

export interface TunnelRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: TunnelHeaders;
  readonly body: Buffer;
}

export interface TunnelResponse {
  readonly status: number;
  readonly headers: TunnelHeaders;
  readonly body: Buffer;
}

export interface TunnelReply {
  readonly status: number;
  readonly headers?: TunnelHeaders;
  readonly body?: Uint8Array | string;
}

/** Serves the peer's requests. `signal` aborts when the peer resets the stream or the tunnel closes. */
export type TunnelHandler = (
  request: TunnelRequest,
  context: { readonly signal: AbortSignal },
) => Promise<TunnelReply> | TunnelReply;

export interface TunnelMuxOptions {
  /** 'initiator' opens odd stream ids, 'acceptor' even ones. The bridge (TLS client) is the initiator. */
  readonly side: 'initiator' | 'acceptor';
  readonly handler?: TunnelHandler;
  readonly limits?: Partial<TunnelLimits>;
  readonly logger?: Logger;
}

export interface TunnelStats {
  readonly localStreams: number;
  readonly remoteStreams: number;
  readonly framesIn: number;
  readonly framesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly lastPingRttMs?: number;
}

export interface TunnelMux {
  /** Sends one request and resolves with the whole response. */
  request(
    head: RequestHead,
    body?: Uint8Array | string,
    options?: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<TunnelResponse>;
  /** Sets (or replaces) the handler for the peer's requests. */
  handle(handler: TunnelHandler): void;
  /** One PING round trip; resolves with the round-trip time in ms. */
  ping(timeoutMs?: number): Promise<number>;
  /** Sends GOAWAY and ends the stream. Idempotent. */
  close(reason?: ResetReason): void;
  /**
   * Closes at the first moment no stream is in flight either way, with GOAWAY CT_TUNNEL_DRAINED (the peer may
   * resend what it had not had answered, see above); after `timeoutMs` closes anyway with CT_TUNNEL_CLOSED. Both
   * ends keep serving meanwhile. Resolves once closed.
   */
  closeWhenIdle(reason: string, timeoutMs: number): Promise<void>;
  readonly closed: boolean;
  /**
   * Closing once idle, at this end (closeWhenIdle) or the peer's (it refused a request with CT_TUNNEL_DRAINED):
   * new requests belong on another tunnel.
   */
  readonly draining: boolean;
  /** Resolves once, with why the tunnel ended. Never rejects. */
  readonly done: Promise<CloudtaserError>;
  stats(): TunnelStats;
}

interface LocalStream {
  readonly id: number;
  response?: { status: number; headers: TunnelHeaders };
  chunks: Buffer[];
  bytes: number;
  settle(error: CloudtaserError | undefined, response?: TunnelResponse): void;
}

interface RemoteStream {
  readonly id: number;
  readonly head: RequestHead;
  chunks: Buffer[];
  bytes: number;
  ended: boolean;
  readonly abort: AbortController;
}

/** Wraps a connected Duplex (the mutual-TLS socket) in a multiplexer. */
export function createTunnelMux(stream: Duplex, options: TunnelMuxOptions): TunnelMux {
  const limits = resolveTunnelLimits(options.limits);
  const log = moduleLogger(options.logger, 'tunnel');
  const localParity = options.side === 'initiator' ? 1 : 0;
  const decoder = new FrameDecoder(limits.maxFramePayloadBytes);
  const local = new Map<number, LocalStream>();
  const remote = new Map<number, RemoteStream>();
  let handler: TunnelHandler | undefined = options.handler;
  let nextLocalId = localParity === 1 ? 1 : 2;
  let lastRemoteId = 0;
  let closed = false;
  let framesIn = 0;
  let framesOut = 0;
  let bytesIn = 0;
  let bytesOut = 0;
  let lastPingRttMs: number | undefined;
  let pendingPing:
    | {
        payload: Buffer;
        started: number;
        resolve(rtt: number): void;
        reject(err: CloudtaserError): void;
        timer: NodeJS.Timeout;
      }
    | undefined;
  const drainWaiters = new Set<() => void>();
  /** Set by closeWhenIdle: called whenever a stream ends, it closes once none is left. */
  let onStreamEnded: (() => void) | undefined;
  /** The peer refused a request because it is closing (a RESET CT_TUNNEL_DRAINED): send nothing new here. */
  let peerDraining = false;

  let resolveDone!: (err: CloudtaserError) => void;
  const done = new Promise<CloudtaserError>((resolve) => {
    resolveDone = resolve;
  });

  const onData = (chunk: Buffer) => {
    if (closed) return;
    bytesIn += chunk.length;
    let frames: Frame[];
    try {
      frames = decoder.push(chunk);
      for (const frame of frames) {
        framesIn++;
        dispatch(frame);
        if (closed) return;
      }
    } catch (err) {
      if (isCloudtaserError(err, 'CT_TUNNEL_PROTOCOL')) {
        failProtocol(err);
        return;
      }
      throw err;
    }
  };
  stream.on('data', onData);
  stream.on('drain', () => wakeDrainWaiters());
  stream.on('error', (err) =>
    finish(
      new CloudtaserError('CT_TUNNEL_CLOSED', `the tunnel connection failed: ${err.message}`, { cause: err }),
      false,
    ),
  );
  stream.on('end', () => finish(new CloudtaserError('CT_TUNNEL_CLOSED', 'the peer ended the tunnel'), false));
  stream.on('close', () =>
    finish(new CloudtaserError('CT_TUNNEL_CLOSED', 'the tunnel connection closed'), false),
  );

  const pingTimer =
    limits.pingIntervalMs > 0 ? setInterval(() => void livenessPing(), limits.pingIntervalMs) : undefined;
  pingTimer?.unref();

  function dispatch(frame: Frame): void {
    const { type, streamId, payload } = frame;
    const connectionLevel = type === FrameType.PING || type === FrameType.PONG || type === FrameType.GOAWAY;
    if (connectionLevel !== (streamId === 0)) {
      throw protocolError(`${frameTypeName(type)} frame on stream ${streamId}`);
    }
    switch (type) {
      case FrameType.PING:
        if (payload.length !== 8) throw protocolError('PING payload must be 8 bytes');
        write(FrameType.PONG, 0, payload);
        return;
      case FrameType.PONG:
        if (payload.length !== 8) throw protocolError('PONG payload must be 8 bytes');
        if (pendingPing?.payload.equals(payload)) {
          const current = pendingPing;
          pendingPing = undefined;
          clearTimeout(current.timer);
          lastPingRttMs = performance.now() - current.started;
          current.resolve(lastPingRttMs);
        }
        return; // an unsolicited or stale PONG is harmless
      case FrameType.GOAWAY: {
        const reason = decodeReason(payload, 'GOAWAY');
        finish(
          new CloudtaserError(
            'CT_TUNNEL_CLOSED',
            `the peer closed the tunnel (${reason.code}: ${reason.reason})`,
            { details: { peerCode: reason.code } },
          ),
          false,
          undefined,
          reason.code === 'CT_TUNNEL_DRAINED',
        );
        return;
      }
    }
    if ((streamId & 1) === localParity) onLocalStreamFrame(type, streamId, payload);
    else onRemoteStreamFrame(type, streamId, payload);
  }

  /** Frames about a stream we opened: the peer's response. */
  function onLocalStreamFrame(type: FrameTypeValue, id: number, payload: Buffer): void {
    const entry = local.get(id);
    if (!entry) {
      // A stream we already finished or reset: late frames are expected and ignored; a never-opened one is not.
      if (id >= nextLocalId)
        throw protocolError(`${frameTypeName(type)} frame for stream ${id}, which was never opened`);
      return;
    }
    switch (type) {
      case FrameType.RESPONSE:
        if (entry.response) throw protocolError(`second RESPONSE on stream ${id}`);
        checkHeadSize(payload);
        entry.response = decodeResponseHead(payload) as { status: number; headers: TunnelHeaders };
        return;
      case FrameType.DATA:
        if (!entry.response) throw protocolError(`DATA before RESPONSE on stream ${id}`);
        entry.bytes += payload.length;
        if (entry.bytes > limits.maxBodyBytes) {
          resetStream(id, { code: 'CT_TUNNEL_PROTOCOL', reason: 'response body over the limit' });
          entry.settle(
            new CloudtaserError(
              'CT_TUNNEL_PROTOCOL',
              `the response body exceeds ${limits.maxBodyBytes} bytes`,
            ),
          );
          return;
        }
        entry.chunks.push(payload);
        return;
      case FrameType.END:
        if (!entry.response) throw protocolError(`END before RESPONSE on stream ${id}`);
        entry.settle(undefined, {
          status: entry.response.status,
          headers: entry.response.headers,
          body: joinChunks(entry.chunks, entry.bytes),
        });
        return;
      case FrameType.RESET: {
        const reason = decodeReason(payload, 'RESET');
        if (reason.code === 'CT_TUNNEL_DRAINED') {
          // The peer is closing and took nothing new: this request was not processed, and the next belong on
          // another tunnel.
          peerDraining = true;
          entry.settle(
            new CloudtaserError('CT_TUNNEL_CLOSED', `the peer is closing the tunnel: ${reason.reason}`, {
              details: { peerReset: true, unprocessed: true },
            }),
          );
          return;
        }
        entry.settle(
          new CloudtaserError(reason.code, `the peer reset the request: ${reason.reason}`, {
            details: { peerReset: true },
          }),
        );
        return;
      }
      default:
        throw protocolError(`${frameTypeName(type)} frame on our own stream ${id}`);
    }
  }

  /** Frames about a stream the peer opened: its request. */
  function onRemoteStreamFrame(type: FrameTypeValue, id: number, payload: Buffer): void {
    if (type === FrameType.OPEN) {
      if (id <= lastRemoteId) throw protocolError(`OPEN reuses stream ${id}`);
      lastRemoteId = id;
      checkHeadSize(payload);
      const head = decodeRequestHead(payload);
      if (onStreamEnded) {
        // Closing once idle: under steady traffic the tunnel would never be idle if new requests were taken. This
        // one is refused unprocessed, which tells the peer to send it, and the ones after it, on its next tunnel.
        resetStream(id, {
          code: 'CT_TUNNEL_DRAINED',
          reason: 'this end is closing; send it on the next tunnel',
        });
        return;
      }
      if (remote.size >= limits.maxConcurrentStreams) {
        resetStream(id, {
          code: 'CT_TUNNEL_PROTOCOL',
          reason: `over ${limits.maxConcurrentStreams} concurrent streams`,
        });
        return;
      }
      remote.set(id, { id, head, chunks: [], bytes: 0, ended: false, abort: new AbortController() });
      return;
    }
    const entry = remote.get(id);
    if (!entry) {
      if (id > lastRemoteId)
        throw protocolError(`${frameTypeName(type)} frame for stream ${id}, which was never opened`);
      return; // finished or reset by us; late frames are ignored
    }
    switch (type) {
      case FrameType.DATA:
        if (entry.ended) throw protocolError(`DATA after END on stream ${id}`);
        entry.bytes += payload.length;
        if (entry.bytes > limits.maxBodyBytes) {
          remote.delete(id);
          entry.abort.abort();
          resetStream(id, {
            code: 'CT_TUNNEL_PROTOCOL',
            reason: `request body over ${limits.maxBodyBytes} bytes`,
          });
          streamEnded();
          return;
        }
        entry.chunks.push(payload);
        return;
      case FrameType.END:
        if (entry.ended) throw protocolError(`second END on stream ${id}`);
        entry.ended = true;
        void serve(entry);
        return;
      case FrameType.RESET:
        decodeReason(payload, 'RESET');
        remote.delete(id);
        entry.abort.abort();
        streamEnded();
        return;
      default:
        throw protocolError(`${frameTypeName(type)} frame on the peer's stream ${id}`);
    }
  }

  async function serve(entry: RemoteStream): Promise<void> {
    const request: TunnelRequest = {
      method: entry.head.method,
      path: entry.head.path,
      headers: entry.head.headers ?? {},
      body: joinChunks(entry.chunks, entry.bytes),
    };
    entry.chunks = [];
    let reply: TunnelReply;
    try {
      reply = handler
        ? await handler(request, { signal: entry.abort.signal })
        : {
            status: 503,
            headers: { 'content-type': 'text/plain' },
            body: 'no handler on this end of the tunnel',
          };
    } catch (err) {
      if (remote.get(entry.id) !== entry) return;
      remote.delete(entry.id);
      const code: ErrorCode = err instanceof CloudtaserError ? err.code : 'CT_INTERNAL';
      // Only our own coded messages cross the tunnel; anything else may carry internals.
      const reason = err instanceof CloudtaserError ? err.message : 'the handler failed';
      log.warn(
        { event: 'tunnel.handler_failed', code, method: request.method, path: request.path },
        'tunnel handler failed',
      );
      resetStream(entry.id, { code, reason });
      streamEnded();
      return;
    }
    if (remote.get(entry.id) !== entry || closed) return;
    try {
      const body = toBuffer(reply.body);
      if (body.length > limits.maxBodyBytes)
        throw new CloudtaserError('CT_INTERNAL', 'response body over the tunnel limit');
      const head = encodeResponseHead({ status: reply.status, headers: reply.headers });
      if (body.length <= DATA_CHUNK_BYTES) {
        // One write, so one TLS record and one relay hop carry the whole small answer.
        writeFrames(entry.id, [[FrameType.RESPONSE, head], ...dataFrame(body), [FrameType.END]]);
      } else {
        write(FrameType.RESPONSE, entry.id, head);
        await sendBody(entry.id, body, () => remote.get(entry.id) === entry);
        if (remote.get(entry.id) === entry) write(FrameType.END, entry.id);
      }
    } catch (err) {
      resetStream(entry.id, { code: 'CT_INTERNAL', reason: 'the handler produced an invalid response' });
      log.warn(
        { event: 'tunnel.bad_reply', path: request.path, error: (err as Error).message },
        'tunnel handler produced an invalid response',
      );
    } finally {
      remote.delete(entry.id);
      // After the last frame of the answer is written: a drain must not close ahead of it.
      streamEnded();
    }
  }

  async function request(
    head: RequestHead,
    body?: Uint8Array | string,
    callOptions: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<TunnelResponse> {
    if (closed)
      throw new CloudtaserError('CT_TUNNEL_CLOSED', 'the tunnel is closed; wait for it to reconnect', {
        details: { unprocessed: true },
      });
    const bodyBytes = toBuffer(body);
    if (bodyBytes.length > limits.maxBodyBytes) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `request body of ${bodyBytes.length} bytes exceeds the tunnel limit of ${limits.maxBodyBytes}`,
      );
    }
    if (local.size >= limits.maxConcurrentStreams) {
      throw new CloudtaserError(
        'CT_TUNNEL_PROTOCOL',
        `${limits.maxConcurrentStreams} requests are already in flight on this tunnel; retry later`,
      );
    }
    if (callOptions.signal?.aborted)
      throw new CloudtaserError('CT_CANCELLED', 'the request was cancelled before it was sent');
    const encodedHead = encodeRequestHead(head);
    if (nextLocalId > 0xffff_fffe) {
      close({ code: 'CT_TUNNEL_CLOSED', reason: 'stream ids exhausted' });
      throw new CloudtaserError('CT_TUNNEL_CLOSED', 'the tunnel used up its stream ids; it will reconnect', {
        details: { unprocessed: true },
      });
    }
    const id = nextLocalId;
    nextLocalId += 2;
    const timeoutMs = callOptions.timeoutMs ?? limits.requestTimeoutMs;

    return new Promise<TunnelResponse>((resolve, reject) => {
      const onAbort = () => {
        if (local.get(id) !== entry) return;
        resetStream(id, { code: 'CT_CANCELLED', reason: 'the requester cancelled' });
        entry.settle(new CloudtaserError('CT_CANCELLED', `${head.method} ${head.path} was cancelled`));
      };
      const timer = setTimeout(() => {
        if (local.get(id) !== entry) return;
        resetStream(id, { code: 'CT_CANCELLED', reason: 'the requester timed out' });
        entry.settle(
          new CloudtaserError(
            'CT_TUNNEL_PROTOCOL',
            `no answer to ${head.method} ${head.path} within ${timeoutMs} ms through the tunnel`,
          ),
        );
      }, timeoutMs);
      const entry: LocalStream = {
        id,
        chunks: [],
        bytes: 0,
        settle(error, response) {
          if (local.get(id) !== entry) return;
          local.delete(id);
          clearTimeout(timer);
          callOptions.signal?.removeEventListener('abort', onAbort);
          if (error) reject(error);
          else resolve(response!);
          streamEnded();
        },
      };
      local.set(id, entry);
      callOptions.signal?.addEventListener('abort', onAbort, { once: true });
      if (bodyBytes.length <= DATA_CHUNK_BYTES) {
        writeFrames(id, [[FrameType.OPEN, encodedHead], ...dataFrame(bodyBytes), [FrameType.END]]);
        return;
      }
      write(FrameType.OPEN, id, encodedHead);
      sendBody(id, bodyBytes, () => local.get(id) === entry)
        .then(() => {
          if (local.get(id) === entry) write(FrameType.END, id);
        })
        .catch((err: unknown) =>
          entry.settle(
            err instanceof CloudtaserError ? err : new CloudtaserError('CT_TUNNEL_CLOSED', String(err)),
          ),
        );
    });
  }

  async function sendBody(id: number, body: Buffer, stillWanted: () => boolean): Promise<void> {
    for (let offset = 0; offset < body.length; offset += DATA_CHUNK_BYTES) {
      if (closed || !stillWanted()) return;
      const flushed = write(FrameType.DATA, id, body.subarray(offset, offset + DATA_CHUNK_BYTES));
      if (!flushed) await waitForDrain();
    }
  }

  function waitForDrain(): Promise<void> {
    if (closed) return Promise.resolve();
    return new Promise((resolve) => drainWaiters.add(resolve));
  }

  function wakeDrainWaiters(): void {
    const waiters = [...drainWaiters];
    drainWaiters.clear();
    for (const wake of waiters) wake();
  }

  function write(type: FrameTypeValue, id: number, payload?: Uint8Array): boolean {
    if (closed || stream.destroyed) return true;
    const frame = encodeFrame(type, id, payload);
    framesOut++;
    bytesOut += frame.length;
    return stream.write(frame);
  }

  /** Several frames of one stream in a single write (small requests and answers), encoded in one buffer. */
  function writeFrames(id: number, frames: Array<[FrameTypeValue, Uint8Array?]>): boolean {
    if (closed || stream.destroyed) return true;
    const joined = encodeFrames(id, frames);
    framesOut += frames.length;
    bytesOut += joined.length;
    return stream.write(joined);
  }

  function resetStream(id: number, reason: ResetReason): void {
    write(FrameType.RESET, id, encodeReason(reason));
  }

  function checkHeadSize(payload: Buffer): void {
    if (payload.length > limits.maxHeadBytes)
      throw protocolError(`head of ${payload.length} bytes exceeds ${limits.maxHeadBytes}`);
  }

  function ping(timeoutMs = limits.pingTimeoutMs): Promise<number> {
    if (closed) return Promise.reject(new CloudtaserError('CT_TUNNEL_CLOSED', 'the tunnel is closed'));
    if (pendingPing) {
      const current = pendingPing;
      return new Promise((resolve, reject) => {
        const previousResolve = current.resolve;
        const previousReject = current.reject;
        current.resolve = (rtt) => {
          previousResolve(rtt);
          resolve(rtt);
        };
        current.reject = (err) => {
          previousReject(err);
          reject(err);
        };
      });
    }
    return new Promise((resolve, reject) => {
      const payload = randomBytes(8);
      const timer = setTimeout(() => {
        if (pendingPing?.payload !== payload) return;
        pendingPing = undefined;
        const err = new CloudtaserError(
          'CT_TUNNEL_CLOSED',
          `the peer did not answer a ping within ${timeoutMs} ms`,
        );
        reject(err);
        log.warn({ event: 'tunnel.ping_timeout', timeoutMs }, 'tunnel peer stopped answering pings');
        finish(err, true);
      }, timeoutMs);
      timer.unref();
      pendingPing = { payload, started: performance.now(), resolve, reject, timer };
      write(FrameType.PING, 0, payload);
    });
  }

  async function livenessPing(): Promise<void> {
    if (closed || pendingPing) return;
    await ping().catch(() => undefined);
  }

  function protocolError(message: string): CloudtaserError {
    return new CloudtaserError('CT_TUNNEL_PROTOCOL', `tunnel peer broke the protocol: ${message}`);
  }

  function failProtocol(err: CloudtaserError): void {
    log.warn(
      { event: 'tunnel.protocol_error', code: err.code, reason: err.message },
      'closing the tunnel: malformed input',
    );
    finish(err, true);
  }

  function close(reason: ResetReason = { code: 'CT_TUNNEL_CLOSED', reason: 'closed by this end' }): void {
    finish(
      new CloudtaserError('CT_TUNNEL_CLOSED', `the tunnel was closed: ${reason.reason}`, {
        details: { code: reason.code },
      }),
      true,
      reason,
    );
  }

  function streamEnded(): void {
    onStreamEnded?.();
  }

  function closeWhenIdle(reason: string, timeoutMs: number): Promise<void> {
    if (!closed) {
      const timer = setTimeout(
        () =>
          close({
            code: 'CT_TUNNEL_CLOSED',
            reason: `${reason}; requests still in flight after ${timeoutMs} ms`,
          }),
        timeoutMs,
      );
      void done.then(() => clearTimeout(timer));
      onStreamEnded = () => {
        if (!closed && local.size === 0 && remote.size === 0) close({ code: 'CT_TUNNEL_DRAINED', reason });
      };
      onStreamEnded();
    }
    return done.then(() => undefined);
  }

  /**
   * `unprocessed`: the peer's GOAWAY was CT_TUNNEL_DRAINED, so what we still wait for was never processed and
   * the requester may send it again elsewhere.
   */
  function finish(
    err: CloudtaserError,
    sendGoaway: boolean,
    reason?: ResetReason,
    unprocessed = false,
  ): void {
    if (closed) return;
    if (sendGoaway && !stream.destroyed) {
      try {
        stream.write(
          encodeFrame(FrameType.GOAWAY, 0, encodeReason(reason ?? { code: err.code, reason: err.message })),
        );
      } catch {
        // the socket is already failing; closing it below is all that is left to do
      }
    }
    closed = true;
    if (pingTimer) clearInterval(pingTimer);
    if (pendingPing) {
      clearTimeout(pendingPing.timer);
      pendingPing.reject(err);
      pendingPing = undefined;
    }
    for (const entry of [...local.values()])
      entry.settle(
        new CloudtaserError(
          'CT_TUNNEL_CLOSED',
          `the tunnel closed before the answer arrived: ${err.message}`,
          { cause: err, details: unprocessed ? { unprocessed: true } : undefined },
        ),
      );
    for (const entry of remote.values()) entry.abort.abort();
    remote.clear();
    wakeDrainWaiters();
    stream.off('data', onData);
    if (!stream.destroyed) {
      stream.end();
      // Give close_notify / GOAWAY a moment to leave, then make sure the socket is gone.
      setTimeout(() => stream.destroy(), 1000).unref();
    }
    log.info(
      { event: 'tunnel.closed', code: err.code, reason: err.message, framesIn, framesOut, bytesIn, bytesOut },
      'tunnel closed',
    );
    resolveDone(err);
  }

  return {
    request,
    handle(next) {
      handler = next;
    },
    ping,
    close,
    closeWhenIdle,
    get closed() {
      return closed;
    },
    get draining() {
      return onStreamEnded !== undefined || peerDraining;
    },
    done,
    stats: () => ({
      localStreams: local.size,
      remoteStreams: remote.size,
      framesIn,
      framesOut,
      bytesIn,
      bytesOut,
      lastPingRttMs,
    }),
  };
}

export function resolveTunnelLimits(overrides: Partial<TunnelLimits> = {}): TunnelLimits {
  const merged = { ...DEFAULT_TUNNEL_LIMITS, ...stripUndefined(overrides) };
  for (const [key, value] of Object.entries(merged)) {
    const min = key === 'pingIntervalMs' ? 0 : 1;
    // A duration beyond a Node timer's reach would fire after 1 ms (a ping per millisecond, say).
    const max = key.endsWith('Ms') ? MAX_TIMER_MS : Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `tunnel limit '${key}' is ${value}; it must be an integer >= ${min}${key.endsWith('Ms') ? ` and <= ${max}` : ''}`,
      );
    }
  }
  if (merged.maxFramePayloadBytes < DATA_CHUNK_BYTES) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `tunnel limit 'maxFramePayloadBytes' must be at least ${DATA_CHUNK_BYTES}`,
    );
  }
  return Object.freeze(merged);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The body as one Buffer: the chunk itself when there is one (no copy), else one concatenation. */
function joinChunks(chunks: Buffer[], bytes: number): Buffer {
  if (chunks.length === 1) return chunks[0];
  return chunks.length === 0 ? EMPTY_BODY : Buffer.concat(chunks, bytes);
}

const EMPTY_BODY = Buffer.alloc(0);

function dataFrame(body: Buffer): Array<[FrameTypeValue, Uint8Array]> {
  return body.length > 0 ? [[FrameType.DATA, body]] : [];
}

function toBuffer(body: Uint8Array | string | undefined): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}
