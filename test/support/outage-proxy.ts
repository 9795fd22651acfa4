/**
 * A TCP pass-through in front of the Kubernetes test server that plays an API server outage:
 *  - 'up': bytes pass;
 *  - 'refuse': every connection (open or new) is reset at once (API server process down, port closed);
 *  - 'blackhole': connections are accepted and kept, nothing is ever answered (a dead node, a dropped route).
 * Back to `up`, the black-holed connections are reset (as after a long outage) and new ones pass.
 */
import { connect, createServer, type Socket } from 'node:net';

export type OutageMode = 'up' | 'refuse' | 'blackhole';

export async function startOutageProxy(target: URL) {
  let mode: OutageMode = 'up';
  const pairs = new Set<{ client: Socket; upstream?: Socket }>();
  const server = createServer((client) => {
    client.on('error', () => undefined);
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    client.on('close', () => {
      pairs.delete(pair);
      pair.upstream?.destroy();
    });
    if (mode === 'blackhole') return; // held, never answered, data dropped
    const upstream = connect(Number(target.port), target.hostname);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (chunk) => {
      if (mode === 'up') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (mode === 'up') client.write(chunk);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `https://127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    set(next: OutageMode) {
      const previous = mode;
      mode = next;
      if (next === 'refuse' || (next === 'up' && previous === 'blackhole'))
        for (const pair of [...pairs]) {
          pair.client.resetAndDestroy();
          pair.upstream?.destroy();
        }
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}
