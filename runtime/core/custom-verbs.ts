/**
 * OpenBao's custom HTTP verbs on a Node HTTP server. hvac, node-vault and `curl -X LIST` send `LIST <path>`
 * (and `SCAN`), which OpenBao treats as `GET <path>?list=true` (internal/http/logical.go
 * `buildLogicalRequestNoAuth`). Node's HTTP parser knows a fixed set of methods and answers anything else with
 * 400 and an empty body, before any handler runs. So each connection passes through a small HTTP/1.1 framing
 * tracker that rewrites such a request line to the GET form and leaves every other byte as it was.
 *
 * The tracker follows request framing (request line, headers, Content-Length or chunked body, trailers) so it
 * only ever touches request lines, never a body, however the bytes are split across reads. On anything it does
 * not understand (conflicting lengths, line folding, an upgrade, an overlong line) it stops rewriting and passes
 * the rest through unchanged: Node's parser then refuses the request itself, as it would have without us.
 */
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { CloudtaserError } from './errors.js';

const LF = 0x0a;
/** Longest line kept to be parsed (request line, header, chunk size); Node's own header limit is 16 KiB. */
const MAX_LINE_BYTES = 16 * 1024;
const REWRITES: Record<string, string> = { LIST: 'list=true', SCAN: 'scan=true' };
const CUSTOM_REQUEST_LINE = /^(LIST|SCAN) ([^\s]+) (HTTP\/1\.[01])(\r?\n)$/;

type State =
  | 'request-line'
  | 'header'
  | 'body'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-end'
  | 'trailer'
  | 'opaque';

/**
 * Rewrites `LIST`/`SCAN` request lines in one connection's inbound byte stream. Feed it every chunk in order
 * with `push`; what it returns is what the HTTP parser should see. `end` returns whatever was held back.
 */
export class CustomVerbRewriter {
  #state: State = 'request-line';
  /** The request line so far (held back until complete, so it can be rewritten). */
  #held: Buffer[] = [];
  /** Copy of the current header, chunk-size or trailer line so far (already passed on). */
  #line: Buffer[] = [];
  #lineBytes = 0;
  #remaining = 0;
  #head = newHead();

  /** True once framing was lost and the stream is passed through untouched. */
  get opaque(): boolean {
    return this.#state === 'opaque';
  }

  /** True while part of a request line is held back (the HTTP parser has not seen the request start yet). */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    /** Start of the part of `chunk` that is passed on unchanged and not yet in `out`. */
    let passFrom = 0;
    let at = 0;
    while (at < chunk.length) {
      const state = this.#state;
      if (state === 'opaque') {
        at = chunk.length;
        break;
      }
      if (state === 'body' || state === 'chunk-data') {
        const step = Math.min(this.#remaining, chunk.length - at);
        at += step;
        this.#remaining -= step;
        if (this.#remaining === 0) this.#state = state === 'body' ? 'request-line' : 'chunk-end';
        continue;
      }
      const lf = chunk.indexOf(LF, at);
      const end = lf < 0 ? chunk.length : lf + 1;
      const piece = chunk.subarray(at, end);
      if (state === 'request-line') {
        if (at > passFrom) out.push(chunk.subarray(passFrom, at));
        passFrom = end;
        this.#held.push(piece);
        this.#lineBytes += piece.length;
        if (lf < 0) {
          // Bytes no request line starts with (a TLS ClientHello at a plain port): passed on now, so Node's parser
          // refuses them at once instead of after the headers timeout, waiting for a line end that never comes.
          if (this.#lineBytes > MAX_LINE_BYTES || !startsLikeRequestLine(this.#held[0]![0]!))
            out.push(...this.#releaseHeld('opaque'));
        } else {
          out.push(this.#requestLine(Buffer.concat(this.#held)));
          this.#held = [];
          this.#lineBytes = 0;
        }
        at = end;
        continue;
      }
      this.#line.push(piece);
      this.#lineBytes += piece.length;
      at = end;
      if (lf < 0) {
        if (this.#lineBytes > MAX_LINE_BYTES) this.#lose();
        continue;
      }
      const line = Buffer.concat(this.#line)
        .toString('latin1')
        .replace(/\r?\n$/, '');
      this.#line = [];
      this.#lineBytes = 0;
      this.#onLine(state, line);
    }
    if (passFrom < chunk.length) out.push(chunk.subarray(passFrom));
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** The bytes still held back when the connection ends (an incomplete request line, passed on as it was). */
  end(): Buffer {
    return Buffer.concat(this.#releaseHeld('opaque'));
  }

  #releaseHeld(next: State): Buffer[] {
    const held = this.#held;
    this.#held = [];
    this.#lineBytes = 0;
    this.#state = next;
    return held;
  }

  #lose(): void {
    this.#state = 'opaque';
    this.#line = [];
    this.#lineBytes = 0;
  }

  /** A complete request line: rewritten when it is a custom verb; blank lines before a request are allowed. */
  #requestLine(raw: Buffer): Buffer {
    const text = raw.toString('latin1');
    if (text === '\r\n' || text === '\n') return raw;
    this.#head = newHead();
    this.#head.connect = text.startsWith('CONNECT ');
    this.#state = 'header';
    const custom = CUSTOM_REQUEST_LINE.exec(text);
    if (!custom) return raw;
    const [, verb, target, version, eol] = custom;
    return Buffer.from(`GET ${withVerbFlag(target, REWRITES[verb])} ${version}${eol}`, 'latin1');
  }

  #onLine(state: State, line: string): void {
    if (state === 'header') {
      if (line === '') this.#endOfHead();
      else this.#header(line);
      return;
    }
    if (state === 'chunk-size') {
      const match = /^([0-9a-fA-F]{1,15})[ \t]*(;.*)?$/.exec(line);
      if (!match) {
        this.#lose();
        return;
      }
      this.#remaining = Number.parseInt(match[1], 16);
      this.#state = this.#remaining === 0 ? 'trailer' : 'chunk-data';
      return;
    }
    if (state === 'chunk-end') {
      this.#state = line === '' ? 'chunk-size' : 'opaque';
      return;
    }
    if (state === 'trailer' && line === '') this.#state = 'request-line';
  }

  #header(line: string): void {
    const head = this.#head;
    // Obsolete line folding could continue a Content-Length; Node refuses it, so stop following.
    if (line.startsWith(' ') || line.startsWith('\t')) head.bad = true;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      head.bad = true;
      return;
    }
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (
        !/^\d{1,15}$/.test(value) ||
        (head.contentLength !== undefined && head.contentLength !== Number(value))
      )
        head.bad = true;
      else head.contentLength = Number(value);
    } else if (name === 'transfer-encoding') {
      head.transferEncoding =
        head.transferEncoding === undefined ? value : `${head.transferEncoding}, ${value}`;
    } else if (name === 'upgrade') {
      head.upgrade = true;
    }
  }

  #endOfHead(): void {
    const head = this.#head;
    const codings = head.transferEncoding
      ?.toLowerCase()
      .split(',')
      .map((c) => c.trim());
    const chunked = codings !== undefined && codings[codings.length - 1] === 'chunked';
    if (
      head.bad ||
      head.upgrade ||
      head.connect ||
      (codings !== undefined && (!chunked || head.contentLength !== undefined))
    ) {
      this.#state = 'opaque';
    } else if (chunked) {
      this.#state = 'chunk-size';
    } else if ((head.contentLength ?? 0) > 0) {
      this.#remaining = head.contentLength as number;
      this.#state = 'body';
    } else {
      this.#state = 'request-line';
    }
  }
}

/**
 * `target` with the verb's flag (`list=true`) as its only `list` parameter: OpenBao takes the LIST verb as a list
 * whatever the query says, so a `?list=false` already there must not turn it into a read (the allow-list and the
 * bridge read the first value). Other parameters are kept byte for byte.
 */
function withVerbFlag(target: string, flag: string): string {
  const question = target.indexOf('?');
  if (question < 0) return `${target}?${flag}`;
  const name = flag.slice(0, flag.indexOf('='));
  const kept = target
    .slice(question + 1)
    .split('&')
    .filter((pair) => pair !== '' && decodedName(pair) !== name);
  return `${target.slice(0, question)}?${[...kept, flag].join('&')}`;
}

function decodedName(pair: string): string {
  const raw = pair.split('=')[0].replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

interface RequestHead {
  contentLength?: number;
  transferEncoding?: string;
  upgrade: boolean;
  connect: boolean;
  bad: boolean;
}

function newHead(): RequestHead {
  return { upgrade: false, connect: false, bad: false };
}

/**
 * Wraps an accepted socket so that its inbound bytes pass through a `CustomVerbRewriter`; writes, timeouts and
 * the lifecycle go straight to the socket. The HTTP server reads the wrapper instead of the socket.
 *
 * `headersTimeoutMs`: how long a request line may stay incomplete. Node's HTTP server starts its own
 * `headersTimeout` only when it sees a request begin, and a request line held back here is one it has not seen:
 * without this a client sending a byte every few seconds kept a keep-alive connection open for ever (the
 * socket's idle timeout restarts with every byte).
 */
export function withCustomVerbs(socket: Socket, options: { headersTimeoutMs?: number } = {}): Duplex {
  const rewriter = new CustomVerbRewriter();
  const headersTimeoutMs = options.headersTimeoutMs ?? 60_000;
  let holdTimer: NodeJS.Timeout | undefined;
  const wrapper = new Duplex({
    // The HTTP server half-closes on its own terms (it ends the response, then the socket).
    allowHalfOpen: true,
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      // Node's HTTP server ends every response with an empty write (to learn when it is flushed); passed on,
      // it would cost a system call for nothing.
      if (chunk.length === 0) callback();
      else socket.write(chunk, callback);
    },
    // The HTTP server corks the connection and writes a response's head and body as two chunks; handing them
    // to the socket corked as well keeps them in one TLS record and one system call (without `writev` each
    // would go out on its own).
    writev(chunks, callback) {
      socket.cork();
      for (let i = 0; i < chunks.length - 1; i++) socket.write(chunks[i].chunk);
      socket.write(chunks[chunks.length - 1].chunk, callback);
      socket.uncork();
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    const rewritten = rewriter.push(chunk);
    if (rewritten.length > 0 && !wrapper.push(rewritten)) socket.pause();
    if (!rewriter.holding) {
      clearTimeout(holdTimer);
      holdTimer = undefined;
    } else if (holdTimer === undefined && headersTimeoutMs > 0) {
      holdTimer = setTimeout(() => socket.destroy(), headersTimeoutMs);
      holdTimer.unref();
    }
  });
  socket.on('end', () => {
    const rest = rewriter.end();
    if (rest.length > 0) wrapper.push(rest);
    wrapper.push(null);
  });
  // The HTTP server arms keep-alive and request timers on the socket it was given, and listens there.
  socket.on('timeout', () => wrapper.emit('timeout'));
  socket.on('error', (err) => wrapper.destroy(err));
  socket.on('close', () => {
    clearTimeout(holdTimer);
    wrapper.destroy();
  });
  Object.assign(wrapper, {
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    remoteFamily: socket.remoteFamily,
    localAddress: socket.localAddress,
    localPort: socket.localPort,
    encrypted: (socket as Socket & { encrypted?: boolean }).encrypted,
    address: () => socket.address(),
    setTimeout: (ms: number, callback?: () => void) => {
      socket.setTimeout(ms);
      if (callback) wrapper.once('timeout', callback);
      return wrapper;
    },
    setNoDelay: (noDelay?: boolean) => {
      socket.setNoDelay(noDelay);
      return wrapper;
    },
    setKeepAlive: (enable?: boolean, delay?: number) => {
      socket.setKeepAlive(enable, delay);
      return wrapper;
    },
    ref: () => {
      socket.ref();
      return wrapper;
    },
    unref: () => {
      socket.unref();
      return wrapper;
    },
  });
  return wrapper;
}

/**
 * Makes an HTTP or HTTPS server (before it listens) accept OpenBao's custom verbs: every connection it accepts
 * reaches its request parser through `withCustomVerbs`. The server's own connection handling is kept; only the
 * socket it hands to it changes.
 */
export function acceptCustomVerbs(server: HttpServer | HttpsServer): void {
  // An HTTPS server hands the decrypted socket to HTTP on `secureConnection`, a plain one on `connection`.
  const event =
    typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function'
      ? 'secureConnection'
      : 'connection';
  const listeners = server.listeners(event) as Array<(socket: Socket) => void>;
  if (listeners.length !== 1) {
    throw new CloudtaserError(
      'CT_INTERNAL',
      `acceptCustomVerbs needs a fresh HTTP server with exactly one ${event} listener (found ${listeners.length})`,
    );
  }
  const [handOver] = listeners;
  server.removeListener(event, handOver);
  server.on(event, (socket: Socket) =>
    handOver.call(
      server,
      withCustomVerbs(socket, { headersTimeoutMs: server.headersTimeout }) as unknown as Socket,
    ),
  );
}

/** An HTTP method is upper-case letters (llhttp knows no other); a blank line before a request starts with CR or LF. */
function startsLikeRequestLine(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || byte === 0x0d || byte === LF;
}
