/**
 * A TCP pass-through that plays a backend going away behind a load balancer or NAT: `kill()` leaves every pooled
 * client connection open but dead, so the next bytes a client writes on it meet a reset (new connections work).
 */
import { connect, createServer, type Socket } from 'node:net';

export async function startTcpProxy(target: URL) {
  const live = new Set<{ client: Socket; upstream: Socket; dead: boolean }>();
  const all = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const pair = { client, upstream, dead: false };
    all.add(client);
    all.add(upstream);
    live.add(pair);
    client.on('data', (chunk) => {
      if (pair.dead) {
        client.resetAndDestroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.dead) client.write(chunk);
    });
    const end = () => {
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', () => {
      if (!pair.dead) end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    address: `http://127.0.0.1:${port}`,
    kill() {
      for (const pair of live) {
        pair.dead = true;
        pair.upstream.destroy();
      }
    },
    close: async () => {
      for (const socket of all) socket.destroy();
      server.close();
    },
  };
}
