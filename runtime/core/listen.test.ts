import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { parseListenAddress } from './health-server.js';
import { listenHttp } from './listen.js';

/** Whether this machine has IPv6 loopback at all (a container without it cannot show the difference). */
const hasIpv6 = await new Promise<boolean>((resolve) => {
  const probe = createServer();
  probe.once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});

describe('listening on every address family', () => {
  it.skipIf(!hasIpv6)(
    '`:port` (what the charts pass) answers on IPv4 and IPv6 alike; `0.0.0.0:port` on IPv4 only',
    async () => {
      const server = createServer((_req, res) => res.end('ok'));
      const { host } = parseListenAddress(':0', '--metrics-listen');
      const listening = await listenHttp(server, { host, port: 0, what: 'a test', event: 'test.listening' });
      try {
        for (const address of ['127.0.0.1', '[::1]']) {
          const answer = await fetch(`http://${address}:${listening.port}/`);
          expect(await answer.text()).toBe('ok');
        }
      } finally {
        await listening.close();
      }
      const v4 = createServer((_req, res) => res.end('ok'));
      const only4 = await listenHttp(v4, {
        host: '0.0.0.0',
        port: 0,
        what: 'a test',
        event: 'test.listening',
      });
      try {
        await expect(fetch(`http://[::1]:${only4.port}/`)).rejects.toThrow();
      } finally {
        await only4.close();
      }
    },
  );
});
