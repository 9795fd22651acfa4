import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudtaserError } from '../../runtime/core/index.js';
import {
  createTunnelMux,
  DATA_CHUNK_BYTES,
  decodeResponseHead,
  encodeFrame,
  encodeResponseHead,
  type Frame,
  FrameDecoder,
  FrameType,
  type TunnelMux,
} from '../../runtime/tunnel/index.js';
import { waitUntil } from '../support/wait.js';
import { duplexPair } from './duplex-pair.js';

const open: TunnelMux[] = [];
afterEach(() => {
  for (const mux of open.splice(0)) mux.close();
});

function pairOfMuxes(limits = {}) {
  const [a, b] = duplexPair();
  const initiator = createTunnelMux(a, { side: 'initiator', limits: { pingIntervalMs: 0, ...limits } });
  const acceptor = createTunnelMux(b, { side: 'acceptor', limits: { pingIntervalMs: 0, ...limits } });
  open.push(initiator, acceptor);
  return { initiator, acceptor, a, b };
}

/** A mux facing a raw end the test writes hostile frames into. */
function muxFacingRawPeer(side: 'initiator' | 'acceptor' = 'acceptor', limits = {}) {
  const [raw, muxEnd] = duplexPair();
  const mux = createTunnelMux(muxEnd, { side, limits: { pingIntervalMs: 0, ...limits } });
  open.push(mux);
  const received: Frame[] = [];
  const decoder = new FrameDecoder(1 << 20);
  raw.on('data', (chunk: Buffer) => received.push(...decoder.push(chunk)));
  return { raw, mux, received };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
/**
 * The frames the mux sent back once it has handled everything written before: a PING from the raw peer is
 * answered in order, so its PONG proves the frames ahead of it were processed (and an answer that is not there
 * by then was not sent).
 */
async function framesAfterHandling(raw: Duplex, received: Frame[]): Promise<Frame[]> {
  const payload = randomBytes(8);
  raw.write(encodeFrame(FrameType.PING, 0, payload));
  await waitUntil(() => received.some((f) => f.type === FrameType.PONG && f.payload.equals(payload)), {
    what: 'the PONG to the barrier PING',
  });
  return received.filter((f) => f.type !== FrameType.PONG);
}

describe('tunnel multiplexer: requests both ways', () => {
  it('carries a request and its response from the initiator to the acceptor', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    acceptor.handle((req) => ({
      status: 200,
      headers: { 'x-seen': req.path },
      body: `hello ${req.body.toString()}`,
    }));
    const res = await initiator.request(
      { method: 'POST', path: '/v1/echo', headers: { 'content-type': 'text/plain' } },
      'bridge',
    );
    expect(res.status).toBe(200);
    expect(res.headers['x-seen']).toBe('/v1/echo');
    expect(res.body.toString()).toBe('hello bridge');
  });

  it('carries requests from the acceptor to the initiator on the same tunnel', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    initiator.handle(() => ({ status: 201, body: 'from initiator' }));
    acceptor.handle(() => ({ status: 202, body: 'from acceptor' }));
    const [one, two] = await Promise.all([
      acceptor.request({ method: 'GET', path: '/v1/tunnel/info' }),
      initiator.request({ method: 'GET', path: '/v1/tunnel/info' }),
    ]);
    expect([one.status, one.body.toString()]).toEqual([201, 'from initiator']);
    expect([two.status, two.body.toString()]).toEqual([202, 'from acceptor']);
  });

  it('splits and reassembles bodies larger than one frame', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    const body = Buffer.alloc(DATA_CHUNK_BYTES * 5 + 123);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    acceptor.handle((req) => ({ status: 200, body: req.body }));
    const res = await initiator.request({ method: 'PUT', path: '/big' }, body);
    expect(res.body.equals(body)).toBe(true);
  });

  it('keeps 30 interleaved requests apart', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    acceptor.handle(async (req) => {
      await new Promise((resolve) => setTimeout(resolve, Number(req.headers['x-delay'])));
      return { status: 200, body: req.path };
    });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        initiator.request({
          method: 'GET',
          path: `/item/${i}`,
          headers: { 'x-delay': String((i * 7) % 11) },
        }),
      ),
    );
    expect(results.map((r) => r.body.toString())).toEqual(Array.from({ length: 30 }, (_, i) => `/item/${i}`));
  });

  it('answers pings with the round-trip time', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    expect(await initiator.ping()).toBeGreaterThanOrEqual(0);
    expect(await acceptor.ping()).toBeGreaterThanOrEqual(0);
    expect(initiator.stats().lastPingRttMs).toBeGreaterThanOrEqual(0);
  });

  it('answers 503 when no handler is set', async () => {
    const { initiator } = pairOfMuxes();
    expect((await initiator.request({ method: 'GET', path: '/x' })).status).toBe(503);
  });
});

describe('tunnel multiplexer: failures stay per stream', () => {
  it('passes a coded handler error to the requester and hides uncoded internals', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    acceptor.handle((req) => {
      if (req.path === '/coded') throw new CloudtaserError('CT_NOT_REGISTERED', 'cluster is not registered');
      throw new Error('secret internal detail /etc/passwd');
    });
    await expect(initiator.request({ method: 'GET', path: '/coded' })).rejects.toMatchObject({
      code: 'CT_NOT_REGISTERED',
    });
    const err = await initiator.request({ method: 'GET', path: '/plain' }).catch((e: CloudtaserError) => e);
    expect(err).toMatchObject({ code: 'CT_INTERNAL' });
    expect((err as Error).message).not.toContain('passwd');
    expect((await initiator.ping()) >= 0).toBe(true);
  });

  it('resets a request whose body is over the limit and keeps the tunnel', async () => {
    const { raw, mux, received } = muxFacingRawPeer('acceptor', { maxBodyBytes: 20_000 });
    mux.handle(() => ({ status: 200 }));
    raw.write(encodeFrame(FrameType.OPEN, 1, json({ method: 'POST', path: '/x', headers: {} })));
    raw.write(encodeFrame(FrameType.DATA, 1, Buffer.alloc(DATA_CHUNK_BYTES)));
    raw.write(encodeFrame(FrameType.DATA, 1, Buffer.alloc(DATA_CHUNK_BYTES)));
    raw.write(encodeFrame(FrameType.DATA, 1, Buffer.alloc(10))); // late frame for the reset stream: ignored
    raw.write(encodeFrame(FrameType.END, 1));
    const sent = await framesAfterHandling(raw, received);
    expect(sent.map((f) => [f.type, f.streamId])).toEqual([[FrameType.RESET, 1]]);
    expect(JSON.parse(received[0].payload.toString()).code).toBe('CT_TUNNEL_PROTOCOL');
    expect(mux.closed).toBe(false);
  });

  it('refuses to send a body over the limit', async () => {
    const { initiator } = pairOfMuxes({ maxBodyBytes: 1000 });
    await expect(initiator.request({ method: 'POST', path: '/x' }, Buffer.alloc(1001))).rejects.toMatchObject(
      { code: 'CT_INVALID_ARGUMENT' },
    );
  });

  it('resets streams over the concurrency bound without closing the tunnel', async () => {
    const { raw, mux, received } = muxFacingRawPeer('acceptor', { maxConcurrentStreams: 2 });
    mux.handle(() => new Promise(() => undefined)); // never answers
    for (const id of [1, 3, 5]) {
      raw.write(encodeFrame(FrameType.OPEN, id, json({ method: 'GET', path: '/x' })));
      raw.write(encodeFrame(FrameType.END, id));
    }
    const sent = await framesAfterHandling(raw, received);
    expect(sent.map((f) => [f.type, f.streamId])).toEqual([[FrameType.RESET, 5]]);
    expect(mux.closed).toBe(false);
  });

  it('times out a request the peer never answers and tells the peer', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    let aborted = false;
    acceptor.handle(
      (_req, { signal }) =>
        new Promise(() => {
          signal.addEventListener('abort', () => {
            aborted = true;
          });
        }),
    );
    await expect(
      initiator.request({ method: 'GET', path: '/slow' }, undefined, { timeoutMs: 50 }),
    ).rejects.toMatchObject({
      code: 'CT_TUNNEL_PROTOCOL',
    });
    await waitUntil(() => aborted, { what: "the acceptor's handler aborted" });
    expect(initiator.closed).toBe(false);
  });

  it('cancels a request through its abort signal', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    acceptor.handle(() => new Promise(() => undefined));
    const controller = new AbortController();
    const pending = initiator.request({ method: 'GET', path: '/x' }, undefined, {
      signal: controller.signal,
    });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'CT_CANCELLED' });
  });

  it('rejects pending requests when the tunnel closes and tells the peer why', async () => {
    const { initiator, acceptor } = pairOfMuxes();
    let arrived = false;
    acceptor.handle(() => {
      arrived = true;
      return new Promise(() => undefined);
    });
    const pending = initiator.request({ method: 'GET', path: '/x' });
    await waitUntil(() => arrived, { what: 'the request at the acceptor' });
    acceptor.close({ code: 'CT_TUNNEL_CLOSED', reason: 'cluster deregistered' });
    await expect(pending).rejects.toMatchObject({ code: 'CT_TUNNEL_CLOSED' });
    const why = await initiator.done;
    expect(why.message).toContain('cluster deregistered');
    await expect(initiator.request({ method: 'GET', path: '/x' })).rejects.toMatchObject({
      code: 'CT_TUNNEL_CLOSED',
    });
  });

  it('closes the tunnel when the peer stops answering pings', async () => {
    const [silent, muxEnd] = duplexPair();
    silent.on('data', () => undefined); // reads and never answers
    const mux = createTunnelMux(muxEnd, {
      side: 'initiator',
      limits: { pingIntervalMs: 20, pingTimeoutMs: 40 },
    });
    open.push(mux);
    const why = await mux.done;
    expect(why.code).toBe('CT_TUNNEL_CLOSED');
    expect(why.message).toContain('ping');
  });
});

describe('tunnel multiplexer: malformed input closes the tunnel with CT_TUNNEL_PROTOCOL', () => {
  const hostile: Array<[string, (raw: Duplex) => void]> = [
    ['an unknown frame type', (raw) => raw.write(Buffer.from([0x7f, 0, 0, 0, 1, 0, 0, 0, 0]))],
    [
      'a frame length over the bound (before its payload arrives)',
      (raw) => raw.write(Buffer.from([FrameType.DATA, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])),
    ],
    [
      'an OPEN with the receiver’s own parity',
      (raw) => raw.write(encodeFrame(FrameType.OPEN, 2, json({ method: 'GET', path: '/' }))),
    ],
    [
      'a replayed OPEN reusing a stream id',
      (raw) => {
        raw.write(encodeFrame(FrameType.OPEN, 3, json({ method: 'GET', path: '/' })));
        raw.write(encodeFrame(FrameType.OPEN, 3, json({ method: 'GET', path: '/' })));
      },
    ],
    ['DATA for a stream never opened', (raw) => raw.write(encodeFrame(FrameType.DATA, 9, Buffer.from('x')))],
    [
      'a RESPONSE for a request never sent',
      (raw) => raw.write(encodeFrame(FrameType.RESPONSE, 4, json({ status: 200 }))),
    ],
    [
      'an OPEN whose head is not JSON',
      (raw) => raw.write(encodeFrame(FrameType.OPEN, 1, Buffer.from('{nope'))),
    ],
    [
      'an OPEN head with an unknown field',
      (raw) => raw.write(encodeFrame(FrameType.OPEN, 1, json({ method: 'GET', path: '/', x: 1 }))),
    ],
    [
      'an OPEN head with a lower-case method',
      (raw) => raw.write(encodeFrame(FrameType.OPEN, 1, json({ method: 'get', path: '/' }))),
    ],
    [
      'an OPEN head with a relative path',
      (raw) => raw.write(encodeFrame(FrameType.OPEN, 1, json({ method: 'GET', path: 'x' }))),
    ],
    [
      'an OPEN head with a header value containing CR LF',
      (raw) =>
        raw.write(
          encodeFrame(FrameType.OPEN, 1, json({ method: 'GET', path: '/', headers: { a: 'b\r\nc: d' } })),
        ),
    ],
    [
      'an OPEN head over the head bound',
      (raw) =>
        raw.write(encodeFrame(FrameType.OPEN, 1, json({ method: 'GET', path: `/${'a'.repeat(2000)}` }))),
    ],
    ['a PING on a stream', (raw) => raw.write(encodeFrame(FrameType.PING, 5, Buffer.alloc(8)))],
    ['a PING of the wrong size', (raw) => raw.write(encodeFrame(FrameType.PING, 0, Buffer.alloc(3)))],
    [
      'an OPEN on stream 0',
      (raw) => raw.write(encodeFrame(FrameType.OPEN, 0, json({ method: 'GET', path: '/' }))),
    ],
    [
      'DATA after END',
      (raw) => {
        raw.write(encodeFrame(FrameType.OPEN, 1, json({ method: 'GET', path: '/' })));
        raw.write(encodeFrame(FrameType.END, 1));
        raw.write(encodeFrame(FrameType.DATA, 1, Buffer.from('late')));
      },
    ],
    [
      'a GOAWAY whose reason is not JSON',
      (raw) => raw.write(encodeFrame(FrameType.GOAWAY, 0, Buffer.from('bye'))),
    ],
  ];

  for (const [what, send] of hostile) {
    it(`on ${what}`, async () => {
      const { raw, mux, received } = muxFacingRawPeer('acceptor', { maxHeadBytes: 1024 });
      mux.handle(() => new Promise(() => undefined));
      send(raw);
      const why = await mux.done;
      expect(why.code).toBe('CT_TUNNEL_PROTOCOL');
      const goaway = await waitUntil(() => received.find((f) => f.type === FrameType.GOAWAY), {
        what: 'the GOAWAY',
      });
      expect(JSON.parse(goaway.payload.toString()).code).toBe('CT_TUNNEL_PROTOCOL');
    });
  }

  it('treats a truncated frame followed by end of stream as a closed tunnel, failing pending requests', async () => {
    const { raw, mux } = muxFacingRawPeer('initiator');
    const pending = mux.request({ method: 'GET', path: '/x' });
    raw.write(encodeFrame(FrameType.RESPONSE, 1, json({ status: 200 })).subarray(0, 12));
    raw.end();
    await expect(pending).rejects.toMatchObject({ code: 'CT_TUNNEL_CLOSED' });
  });

  it('never throws out of the data path on arbitrary bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), async (chunks) => {
        const { raw, mux } = muxFacingRawPeer('acceptor');
        mux.handle(() => ({ status: 200 }));
        for (const chunk of chunks) raw.write(Buffer.from(chunk));
        await new Promise((resolve) => setImmediate(resolve));
        mux.close();
        expect((await mux.done).code).toMatch(/^CT_TUNNEL_(PROTOCOL|CLOSED)$/);
      }),
      { numRuns: 150 },
    );
  });
});

describe('response heads', () => {
  it('encodes a frozen (shared) headers object once per status, byte for byte as an unfrozen one', () => {
    const shared = Object.freeze({ 'content-type': 'application/json' });
    const ok = encodeResponseHead({ status: 200, headers: shared });
    expect(encodeResponseHead({ status: 200, headers: shared })).toBe(ok);
    expect(
      ok.equals(encodeResponseHead({ status: 200, headers: { 'content-type': 'application/json' } })),
    ).toBe(true);
    const notFound = encodeResponseHead({ status: 404, headers: shared });
    expect(decodeResponseHead(notFound)).toEqual({ status: 404, headers: shared });
    expect(decodeResponseHead(encodeResponseHead({ status: 200, headers: shared })).status).toBe(200);
  });

  it('still refuses an invalid head whose headers are frozen, every time', () => {
    const shared = Object.freeze({ 'content-type': 'application/json' });
    for (let i = 0; i < 2; i++)
      expect(() => encodeResponseHead({ status: 999, headers: shared })).toThrow(/100 to 599/);
    const badName = Object.freeze({ 'Bad Name': 'x' });
    expect(() => encodeResponseHead({ status: 200, headers: badName })).toThrow(CloudtaserError);
  });
});

describe('frame decoder', () => {
  it('yields the same frames however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(FrameType.DATA, FrameType.END, FrameType.PING),
            fc.uint8Array({ maxLength: 40 }),
          ),
          {
            maxLength: 10,
          },
        ),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 20 }),
        (specs, cuts) => {
          const frames = specs.map(([type, payload], i) => encodeFrame(type, i + 1, payload));
          const bytes = Buffer.concat(frames);
          const decoder = new FrameDecoder(1024);
          const out: Frame[] = [];
          let offset = 0;
          let i = 0;
          while (offset < bytes.length) {
            const size = cuts[i++ % cuts.length];
            out.push(...decoder.push(bytes.subarray(offset, offset + size)));
            offset += size;
          }
          expect(out.map((f) => [f.type, f.streamId, Buffer.from(f.payload).toString('hex')])).toEqual(
            specs.map(([type, payload], j) => [type, j + 1, Buffer.from(payload).toString('hex')]),
          );
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
    );
  });
});
