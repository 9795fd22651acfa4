import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseListenAddress } from './health-server.js';
import { listenHttp } from './listen.js';

/** Whether this machine has IPv6 loopback at all. */
const hasIpv6 = await new Promise<boolean>((resolve) => {
  const probe = createServer();
  probe.once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});

async function listening(value: string) {
  const server = createServer((_req, res) => res.end('ok'));
  const { host, port } = parseListenAddress(value, '--metrics-listen');
  const handle = await listenHttp(server, { host, port, what: 'a test', event: 'test.listening' });
  return { handle, bound: (server.address() as AddressInfo).address };
}

describe('listening on every address family', () => {
  it('`:port` (what the charts pass) binds the unspecified address of every family; `0.0.0.0:port` IPv4 only', async () => {
    const any = await listening(':0');
    const only4 = await listening('0.0.0.0:0');
    try {
      // `::` is dual-stack; where the machine has no IPv6, Node falls back to 0.0.0.0.
      expect(any.bound).toBe(hasIpv6 ? '::' : '0.0.0.0');
      expect(only4.bound).toBe('0.0.0.0');
      expect(await (await fetch(`http://127.0.0.1:${any.handle.port}/`)).text()).toBe('ok');
    } finally {
      await any.handle.close();
      await only4.handle.close();
    }
  });

  // Needs an IPv6 address to connect from; on a machine without one the test above still checks the binding.
  it.skipIf(!hasIpv6)(
    '`:port` answers over IPv6 too, `0.0.0.0:port` does not (needs IPv6 loopback)',
    async () => {
      const any = await listening(':0');
      const only4 = await listening('0.0.0.0:0');
      try {
        expect(await (await fetch(`http://[::1]:${any.handle.port}/`)).text()).toBe('ok');
        await expect(fetch(`http://[::1]:${only4.handle.port}/`)).rejects.toThrow();
      } finally {
        await any.handle.close();
        await only4.handle.close();
      }
    },
  );
});
