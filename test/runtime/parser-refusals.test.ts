/**
 * What every HTTP listener of ours answers when Node's own parser refuses a request (before any handler runs): a
 * smuggling-shaped Content-Length with Transfer-Encoding, a method nobody serves, TLS bytes at a plain port, headers
 * over 16 KiB. Node's default was a bare 400 or 431 with no body and no log line (outside drills, stops 37 to 39):
 * neither the client nor the SRE learned which listener refused what. Now the answer is OpenBao's error shape with
 * `CT_HTTP_REFUSED`, the connection closes, and the listener logs it (summarized: a stranger sends these at will).
 * Not covered here: the 408 of a request that does not arrive in time (Node checks for it every 30 s at the
 * earliest; the answer's shape is the same code path).
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTokenReviewServer } from '../../runtime/bridge/tokenreview.js';
import { startHealthServer } from '../../runtime/core/health-server.js';
import type { PodApiServer } from '../../runtime/podapi/server.js';
import { startWebhookServer } from '../../runtime/webhook/server.js';
import { captureLogger } from '../beacon/helpers.js';
import { openRaw, startPlainPodApi } from '../support/raw-pod-client.js';

const sockets: Socket[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const close of closers.splice(0)) await close();
});

/** Sends `bytes` on a fresh connection and returns what came back once the server closed it. */
async function exchange(port: number, bytes: string | Buffer): Promise<{ status: number; body: string }> {
  const client = await openRaw(port, sockets);
  client.socket.write(bytes);
  await expect.poll(() => client.closed, { timeout: 3_000 }).toBe(true);
  const text = client.answer();
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

const LOGIN = 'POST /v1/auth/kubernetes/login HTTP/1.1\r\nHost: x\r\n';
/** A ClientHello's first bytes: a TLS client that dialed a plain-HTTP port. */
const CLIENT_HELLO = Buffer.from('16030100a5010000a103035f', 'hex');

const HOSTILE: Array<[string, string | Buffer, number, RegExp]> = [
  [
    'Content-Length with Transfer-Encoding (a smuggling shape)',
    `${LOGIN}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
    /^CT_HTTP_REFUSED: the request is not well-formed HTTP\/1\.1 \(HPE_[A-Z_]+: .+\); nothing was forwarded$/,
  ],
  [
    'a method nobody serves',
    'BREW /v1/secret/data/app HTTP/1.1\r\nHost: x\r\n\r\n',
    400,
    /^CT_HTTP_REFUSED: the request line does not start with an HTTP method this server knows/,
  ],
  ['TLS at the plain port', CLIENT_HELLO, 400, /as when a TLS client dials a plain-HTTP port$/],
  [
    'headers over 16 KiB',
    `GET /v1/secret/data/app HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
    431,
    /^CT_HTTP_REFUSED: the request headers are larger than this server reads \(16 KiB in all\)/,
  ],
];

describe('the pod API, when Node’s HTTP parser refuses a request', () => {
  let api: PodApiServer;
  const capture = () => {
    const { logger, lines } = captureLogger();
    return { logger, lines };
  };

  it.each(HOSTILE)(
    '%s: the status Node would send, a coded OpenBao error body, the connection closed',
    async (_name, bytes, status, line) => {
      const { logger, lines } = capture();
      api = await startPlainPodApi({ logger });
      closers.push(() => api.close());
      const answer = await exchange(api.port, bytes);
      expect(answer.status).toBe(status);
      const { errors } = JSON.parse(answer.body) as { errors: string[] };
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(line);
      // Nothing of what the client sent comes back (the reason is llhttp's fixed text, clipped).
      expect(errors[0]).not.toContain('BREW');
      expect(errors[0]).not.toContain('aaaa');
      const refused = lines.filter((l) => l.event === 'podapi.refused');
      expect(refused).toEqual([
        expect.objectContaining({ code: 'CT_HTTP_REFUSED', status, podAddress: '127.0.0.1', level: 40 }),
      ]);
      expect(String(refused[0]!.parserCode)).toMatch(/^HPE_/);
    },
  );

  it('a flood of malformed requests is one line per pod address and a summary, and well-formed ones still pass', async () => {
    const { logger, lines } = capture();
    api = await startPlainPodApi({ logger });
    closers.push(() => api.close());
    await Promise.all(
      Array.from({ length: 40 }, () => exchange(api.port, 'BREW / HTTP/1.1\r\nHost: x\r\n\r\n')),
    );
    expect(lines.filter((l) => l.event === 'podapi.refused')).toHaveLength(1);
    // A keep-alive connection: a well-formed request is answered as always, the malformed one after it refused.
    const client = await openRaw(api.port, sockets);
    client.socket.write('GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect.poll(() => client.answer().includes('\r\n\r\n')).toBe(true);
    client.socket.write('BREW / HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect.poll(() => client.closed, { timeout: 3_000 }).toBe(true);
    const answers = client.answer().split(/(?=HTTP\/1\.1 \d{3} )/);
    expect(answers).toHaveLength(2);
    expect(answers[0]).not.toContain('CT_HTTP_REFUSED');
    expect(answers[1]).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*"errors":\["CT_HTTP_REFUSED: /);
    await api.close();
    closers.length = 0;
    expect(lines.filter((l) => l.event === 'podapi.refusals_summary')).toEqual([
      expect.objectContaining({ suppressed: 40, byCode: { CT_HTTP_REFUSED: 40 } }),
    ]);
  });
});

describe('the other listeners answer and log the same', () => {
  it('the webhook, the TokenReview listener and the probe port', async () => {
    const { logger, lines } = captureLogger();
    const webhook = await startWebhookServer({
      port: 0,
      host: '127.0.0.1',
      tls: false,
      state: () => ({ connected: false }),
      injection: { image: 'x' },
      logger,
    });
    closers.push(() => webhook.close());
    const tokenReviews = await startTokenReviewServer({
      port: 0,
      host: '127.0.0.1',
      tls: false,
      tunnelFor: () => undefined,
      reviewerFor: async () => undefined,
      logger,
    });
    closers.push(() => tokenReviews.close());
    const probes = await startHealthServer({ port: 0, host: '127.0.0.1' });
    closers.push(() => probes.close());
    for (const url of [webhook.url, tokenReviews.url, probes.url]) {
      const answer = await exchange(Number(new URL(url).port), 'BREW / HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body).errors[0]).toMatch(/^CT_HTTP_REFUSED: /);
    }
    expect(lines.map((l) => l.event).filter((e) => String(e).endsWith('http_refused'))).toEqual([
      'webhook.http_refused',
      'tokenreview.http_refused',
    ]);
    expect(lines.find((l) => l.event === 'webhook.http_refused')).toMatchObject({
      code: 'CT_HTTP_REFUSED',
      status: 400,
      parserCode: 'HPE_INVALID_METHOD',
      remoteAddress: '127.0.0.1',
    });
  });
});
