/**
 * The bridge's pod API forwarder against a plain HTTP server standing in for OpenBao: what it sends, and what a
 * pod gets back when OpenBao answers too much, too late, or not at all. (The full path through broker, beacon
 * and bridge is covered in test/operational and test/faults.)
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CANCELLED_STATUS,
  createOpenBaoForwarder,
  type OpenBaoForwarder,
} from '../../runtime/podapi/forward.js';
import { OPENBAO_TUNNEL_PREFIX, POD_ADDRESS_HEADER } from '../../runtime/podapi/protocol.js';
import { waitUntil } from '../support/wait.js';

let server: Server;
let address: string;
let answer: (req: IncomingMessage, res: ServerResponse) => void;
const seen: Array<{ method?: string; url?: string; headers: IncomingMessage['headers'] }> = [];
let aborted = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    res.on('close', () => {
      if (!res.writableFinished) aborted++;
    });
    answer(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function forwarder(
  options: { timeoutMs?: number; maxResponseBytes?: number; to?: string } = {},
): OpenBaoForwarder {
  return createOpenBaoForwarder({ address: options.to ?? address, ...options });
}

const read = (path = 'secret/data/app/db') => ({
  method: 'GET',
  path: `${OPENBAO_TUNNEL_PREFIX}${path}`,
  headers: { 'x-vault-token': 'hvs.pod-token' },
  body: Buffer.alloc(0),
});

describe('pod API forwarder', () => {
  it("adds the cluster namespace, passes the pod's token, and returns OpenBao's status and body as they are", async () => {
    answer = (_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[]}\n');
    };
    const f = forwarder();
    try {
      const reply = await f.forward('cloudtaser/abcd1234', read());
      expect(reply.status).toBe(404);
      expect(Buffer.from(reply.body as Uint8Array).toString()).toBe('{"errors":[]}\n');
      const request = seen.at(-1)!;
      expect(request).toMatchObject({ method: 'GET', url: '/v1/secret/data/app/db' });
      expect(request.headers['x-vault-namespace']).toBe('cloudtaser/abcd1234');
      expect(request.headers['x-vault-token']).toBe('hvs.pod-token');
    } finally {
      await f.close();
    }
  });

  it('carries an answer of many chunks whole', async () => {
    const big = Buffer.alloc(300 * 1024, 'x');
    answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < big.length; i += 1000) res.write(big.subarray(i, i + 1000));
      res.end();
    };
    const f = forwarder();
    try {
      const reply = await f.forward('ns', read());
      expect(Buffer.compare(Buffer.from(reply.body as Uint8Array), big)).toBe(0);
    } finally {
      await f.close();
    }
  });

  it("answers 502 in OpenBao's error shape for an answer over the tunnel's limit, with a code that says a retry gets the same, and abandons it", async () => {
    answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(Buffer.alloc(4096, 'y'));
      // The rest never comes: the forwarder must not wait for it.
    };
    const f = forwarder({ maxResponseBytes: 1024 });
    try {
      const reply = await f.forward('ns', read());
      expect(reply.status).toBe(502);
      // Not CT_TUNNEL_PROTOCOL (a broken tunnel, worth retrying): an outside test saw clients retry it in vain.
      expect(JSON.parse(String(reply.body))).toEqual({
        errors: [
          "CT_PODAPI_RESPONSE_TOO_LARGE: OpenBao's answer is larger than one cloudtaser tunnel answer carries (1 KiB); a retry gets the same: read a smaller secret, or list a narrower path",
        ],
      });
      await waitUntil(() => aborted > 0, { timeoutMs: 5_000, what: 'the abandoned answer closed' });
    } finally {
      await f.close();
    }
  });

  it("answers 503 'in time' when OpenBao does not answer within the bound", async () => {
    answer = () => undefined;
    const f = forwarder({ timeoutMs: 200 });
    try {
      const reply = await f.forward('ns', read());
      expect(reply.status).toBe(503);
      expect(String(reply.body)).toContain('CT_OPENBAO_TIMEOUT: the secret store did not answer');
      expect(String(reply.body)).toContain('in time');
    } finally {
      await f.close();
    }
  });

  it('answers 503 when OpenBao cannot be reached', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const f = forwarder({ to: `http://127.0.0.1:${port}` });
    try {
      const reply = await f.forward('ns', read());
      expect(reply.status).toBe(503);
      // The code the bridge logs, in the answer the pod gets (before: no code at all).
      expect(String(reply.body)).toContain(
        'CT_OPENBAO_UNREACHABLE: the secret store did not answer the cloudtaser bridge',
      );
    } finally {
      await f.close();
    }
  });

  it('stops the request to OpenBao when the pod goes away', async () => {
    answer = () => undefined;
    const f = forwarder();
    const before = aborted;
    const sent = seen.length;
    const cancel = new AbortController();
    try {
      const pending = f.forward('ns', read(), cancel.signal);
      await waitUntil(() => seen.length > sent, { timeoutMs: 5_000, what: 'the request at OpenBao' });
      cancel.abort();
      // Never sent (the stream was reset); marked cancelled so it is not counted as an OpenBao failure.
      expect((await pending).status).toBe(CANCELLED_STATUS);
      await waitUntil(() => aborted > before, { timeoutMs: 5_000, what: 'the request to OpenBao closed' });
    } finally {
      await f.close();
    }
  });

  it('refuses a path outside the allow-list without asking OpenBao', async () => {
    const f = forwarder();
    const count = seen.length;
    try {
      const reply = await f.forward('ns', read('sys/mounts'));
      expect(reply.status).toBe(403);
      expect(seen.length).toBe(count);
    } finally {
      await f.close();
    }
  });
});

describe('the pod address (--openbao-forwarded-for)', () => {
  const withAddress = (value: string) => ({
    ...read(),
    headers: { 'x-vault-token': 'hvs.pod-token', [POD_ADDRESS_HEADER]: value },
  });
  const forwardedFor = async (value: string, enabled = true): Promise<string | string[] | undefined> => {
    answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    };
    const f = createOpenBaoForwarder({ address, forwardedFor: enabled });
    try {
      await f.forward('ns', withAddress(value));
      return seen.at(-1)!.headers['x-forwarded-for'];
    } finally {
      await f.close();
    }
  };

  it('sends an IP address the broker reports as X-Forwarded-For, IPv4-mapped IPv6 as IPv4', async () => {
    expect(await forwardedFor('10.4.2.17')).toBe('10.4.2.17');
    expect(await forwardedFor('::ffff:10.4.2.17')).toBe('10.4.2.17');
    expect(await forwardedFor('fd00::17')).toBe('fd00::17');
  });

  it('sends nothing for anything but one address (a hostile broker cannot write a chain or another header)', async () => {
    for (const hostile of [
      '10.0.0.1, 6.6.6.6',
      '10.0.0.1 ',
      'evil.example',
      '10.0.0.1\tx',
      '',
      '::ffff:',
      '1.2.3',
    ])
      expect(await forwardedFor(hostile), JSON.stringify(hostile)).toBeUndefined();
  });

  it('sends nothing without the option, whatever the broker reports', async () => {
    expect(await forwardedFor('10.4.2.17', false)).toBeUndefined();
  });
});
