/**
 * A server coming back at an address its clients already have: a TCP forwarder started on `port` (on which
 * nothing listened, so connections were refused) to `target`. Tests start a process against the dead port, then
 * start this to play the server answering again.
 */
import { connect, createServer, type Socket } from 'node:net';

export async function forwardPort(port: number, target: URL): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
