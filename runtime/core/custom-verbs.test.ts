import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { acceptCustomVerbs, CustomVerbRewriter } from './custom-verbs.js';

interface GeneratedRequest {
  readonly method: string;
  readonly target: string;
  readonly headers: readonly string[];
  readonly body:
    | { kind: 'none' }
    | { kind: 'length'; data: string }
    | { kind: 'chunked'; chunks: string[]; trailers: string[] };
}

/** Bodies that look like request lines, with CRLFs and blank lines inside: the rewriter must never touch them. */
const trickyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    'LIST /v1/secret/metadata/x HTTP/1.1\r\n',
    '\r\n\r\nLIST /v1/a HTTP/1.1\r\n\r\n',
    '0\r\n\r\n',
    'SCAN /v1/sys/namespaces HTTP/1.0\n',
  ),
);

const requestArb: fc.Arbitrary<GeneratedRequest> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'LIST', 'SCAN', 'DELETE'),
  target: fc.constantFrom('/v1/secret/metadata/app', '/v1/secret/metadata/app/?x=1', '/v1/a%20b', '/'),
  headers: fc.array(fc.constantFrom('X-Vault-Token: t', 'Accept: */*', 'X-Note: LIST /v1/x HTTP/1.1'), {
    maxLength: 3,
  }),
  body: fc.oneof(
    fc.constant({ kind: 'none' as const }),
    fc.record({ kind: fc.constant('length' as const), data: trickyText }),
    fc.record({
      kind: fc.constant('chunked' as const),
      chunks: fc.array(
        trickyText.filter((s) => s.length > 0),
        { maxLength: 4 },
      ),
      trailers: fc.array(fc.constant('X-Trailer: LIST /v1/x HTTP/1.1'), { maxLength: 1 }),
    }),
  ),
});

function encode(request: GeneratedRequest, rewritten: boolean): Buffer {
  let line = `${request.method} ${request.target} HTTP/1.1\r\n`;
  if (rewritten && (request.method === 'LIST' || request.method === 'SCAN')) {
    const flag = request.method === 'LIST' ? 'list=true' : 'scan=true';
    line = `GET ${request.target}${request.target.includes('?') ? '&' : '?'}${flag} HTTP/1.1\r\n`;
  }
  const headers = ['Host: x', ...request.headers];
  let body = '';
  if (request.body.kind === 'length') {
    headers.push(`Content-Length: ${Buffer.byteLength(request.body.data)}`);
    body = request.body.data;
  } else if (request.body.kind === 'chunked') {
    headers.push('Transfer-Encoding: chunked');
    for (const chunk of request.body.chunks)
      body += `${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`;
    body += `0\r\n${request.body.trailers.map((t) => `${t}\r\n`).join('')}\r\n`;
  }
  return Buffer.from(`${line}${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`);
}

function feed(input: Buffer, cuts: number[]): Buffer {
  const rewriter = new CustomVerbRewriter();
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const point of [...points, input.length]) {
    out.push(rewriter.push(input.subarray(from, point)));
    from = point;
  }
  out.push(rewriter.end());
  return Buffer.concat(out);
}

describe('CustomVerbRewriter', () => {
  it('rewrites exactly the LIST and SCAN request lines of pipelined requests, however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(requestArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (requests, cuts) => {
          const input = Buffer.concat(requests.map((r) => encode(r, false)));
          const expected = Buffer.concat(requests.map((r) => encode(r, true)));
          expect(feed(input, cuts).toString('latin1')).toBe(expected.toString('latin1'));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps the query of a LIST target and the HTTP version', () => {
    expect(feed(Buffer.from('LIST /v1/secret/metadata/a?after=b HTTP/1.0\r\n\r\n'), []).toString()).toBe(
      'GET /v1/secret/metadata/a?after=b&list=true HTTP/1.0\r\n\r\n',
    );
    expect(feed(Buffer.from('\r\nLIST /v1/x HTTP/1.1\r\n\r\n'), [1, 3]).toString()).toBe(
      '\r\nGET /v1/x?list=true HTTP/1.1\r\n\r\n',
    );
  });

  it('makes the verb the only list flag, so a LIST with ?list=false is still a list (OpenBao ignores the query there)', () => {
    const line = (request: string) =>
      feed(Buffer.from(`${request}\r\n\r\n`), [])
        .toString()
        .split('\r\n')[0];
    // Before the fix: GET …?list=false&list=true, which the allow-list (first value) took for a KV read.
    expect(line('LIST /v1/secret/data/app?list=false HTTP/1.1')).toBe(
      'GET /v1/secret/data/app?list=true HTTP/1.1',
    );
    expect(line('LIST /v1/secret/metadata/app?l%69st=0&after=b&list HTTP/1.1')).toBe(
      'GET /v1/secret/metadata/app?after=b&list=true HTTP/1.1',
    );
    expect(line('SCAN /v1/x?scan=false&list=false HTTP/1.1')).toBe('GET /v1/x?list=false&scan=true HTTP/1.1');
  });

  it.each([
    ['a body framed twice (Content-Length and chunked)', 'Content-Length: 5\r\nTransfer-Encoding: chunked'],
    ['two different Content-Lengths', 'Content-Length: 5\r\nContent-Length: 6'],
    ['a Content-Length that is not a number', 'Content-Length: 5x'],
    ['a folded header line', 'Content-Length: 5\r\n  7'],
    ['a transfer coding other than chunked', 'Transfer-Encoding: gzip'],
    ['a protocol upgrade', 'Upgrade: websocket\r\nConnection: Upgrade'],
  ])('stops rewriting and passes the rest through untouched after %s', (_what, headers) => {
    const input = Buffer.from(
      `POST /v1/a HTTP/1.1\r\n${headers}\r\n\r\nhelloLIST /v1/secret/metadata/a HTTP/1.1\r\n\r\n`,
    );
    const rewriter = new CustomVerbRewriter();
    expect(rewriter.push(input).toString('latin1')).toBe(input.toString('latin1'));
    expect(rewriter.opaque).toBe(true);
  });

  it('passes an overlong request line through unchanged, and an unfinished one at the end of the stream', () => {
    const long = Buffer.from(`LIST /${'a'.repeat(20_000)} HTTP/1.1\r\n\r\n`);
    expect(feed(long, [100, 17_000]).toString()).toBe(long.toString());
    expect(feed(Buffer.from('LIST /v1/x HTT'), [4]).toString()).toBe('LIST /v1/x HTT');
  });

  it('passes bytes no request line starts with (a ClientHello at a plain port) at once, not at a line end', () => {
    const rewriter = new CustomVerbRewriter();
    const hello = Buffer.from('16030100a5010000a103035f', 'hex');
    expect(rewriter.push(hello)).toEqual(hello);
    expect(rewriter.holding).toBe(false);
    expect(rewriter.opaque).toBe(true);
    // A request line still arriving is held until it ends (it may be a LIST).
    const partial = new CustomVerbRewriter();
    expect(partial.push(Buffer.from('LIS')).length).toBe(0);
    expect(partial.holding).toBe(true);
  });
});

describe('acceptCustomVerbs on a Node HTTP server', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  async function start(
    keepAliveTimeout = 5_000,
    body: string | Buffer = 'ok',
  ): Promise<{ port: number; seen: string[] }> {
    const seen: string[] = [];
    server = createServer((req: IncomingMessage, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end(body));
    });
    server.keepAliveTimeout = keepAliveTimeout;
    acceptCustomVerbs(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { port: (server.address() as AddressInfo).port, seen };
  }

  async function rawExchange(port: number, parts: string[]): Promise<{ text: string; socket: Socket }> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    for (const part of parts) {
      socket.write(part);
      // Separate TCP segments on loopback: the next write waits for the previous one to be flushed.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return {
      get text() {
        return text;
      },
      socket,
    };
  }

  it('serves LIST as GET ?list=true even when the request line arrives in pieces, after a request with a body', async () => {
    const { port, seen } = await start();
    const exchange = await rawExchange(port, [
      'POST /v1/a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{"LIST":1}\n',
      'LI',
      'ST /v1/secret/metadata/app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]);
    await once(exchange.socket, 'end');
    expect(seen).toEqual(['POST /v1/a', 'GET /v1/secret/metadata/app?list=true']);
    expect(exchange.text.match(/HTTP\/1.1 200/g)).toHaveLength(2);
  });

  it('still lets Node refuse a method it does not know with 400', async () => {
    const { port, seen } = await start();
    const exchange = await rawExchange(port, ['FROB /v1/a HTTP/1.1\r\nHost: x\r\n\r\n']);
    await once(exchange.socket, 'close');
    expect(exchange.text).toMatch(/^HTTP\/1.1 400/);
    expect(seen).toEqual([]);
  });

  it('hands a response head and body to the socket as one write, and no empty write after it', async () => {
    // A Buffer body, as the pod API answers: Node writes the head and the body as two chunks.
    const { port } = await start(5_000, Buffer.from('ok'));
    const socketWrites: number[] = [];
    // Runs before the wrapper takes the socket: counts what reaches the socket's own write path.
    server!.prependListener('connection', (socket: Socket) => {
      const single = socket._write.bind(socket);
      const vectored = socket._writev!.bind(socket);
      socket._write = (chunk, encoding, callback) => {
        socketWrites.push((chunk as Buffer).length);
        single(chunk, encoding, callback);
      };
      socket._writev = (chunks, callback) => {
        socketWrites.push(chunks.reduce((sum, { chunk }) => sum + (chunk as Buffer).length, 0));
        vectored(chunks, callback);
      };
    });
    const exchange = await rawExchange(port, ['GET /v1/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await once(exchange.socket, 'end');
    expect(exchange.text).toMatch(/^HTTP\/1.1 200[\s\S]*\r\n\r\nok$/);
    expect(socketWrites).toEqual([Buffer.byteLength(exchange.text)]);
  });

  it('keeps the server closing idle keep-alive connections (its timers reach the wrapped socket)', async () => {
    const { port } = await start(200);
    const exchange = await rawExchange(port, ['LIST /v1/x HTTP/1.1\r\nHost: x\r\n\r\n']);
    await once(exchange.socket, 'close');
    expect(exchange.text).toMatch(/^HTTP\/1.1 200/);
  });

  it('cuts a connection whose next request line dribbles in longer than headersTimeout (slow-loris)', async () => {
    const { port } = await start(3_000);
    server!.headersTimeout = 600;
    const exchange = await rawExchange(port, ['GET /x HTTP/1.1\r\nHost: x\r\n\r\n']);
    let closed = false;
    exchange.socket.once('close', () => {
      closed = true;
    });
    exchange.socket.on('error', () => undefined);
    await vi.waitFor(() => expect(exchange.text).toMatch(/\r\n\r\nok$/), { timeout: 2_000 });
    // One byte of the next request line every 150 ms: every byte restarts the socket's idle timer, and Node's
    // own headersTimeout never starts for a line it has not seen. Before the fix: still open after 4 s.
    const line = 'LIST /v1/secret/metadata/app HTTP/1.1';
    const started = performance.now();
    for (let i = 0; !closed && performance.now() - started < 4_000; i++) {
      exchange.socket.write(line[i % line.length]);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect(closed).toBe(true);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
