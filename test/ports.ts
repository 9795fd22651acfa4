/** Port checks for lifecycle tests: whether a closed server really gave its port back. */
import { createServer, type Server } from 'node:net';

/** Binds `port` (0: any free one) on `host` (127.0.0.1 by default) and keeps it until `release`. */
export async function occupyPort(
  port = 0,
  host = '127.0.0.1',
): Promise<{ port: number; release(): Promise<void> }> {
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return {
    port: address.port,
    release: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A port on `host` (127.0.0.1 by default; another loopback address where test replicas listen) free a moment ago. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const held = await occupyPort(0, host);
  await held.release();
  return held.port;
}

/** True when something listens on the port on 127.0.0.1 (binding it fails with EADDRINUSE). */
export async function isListening(port: number): Promise<boolean> {
  try {
    await (await occupyPort(port)).release();
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return true;
    throw err;
  }
}
