/**
 * Load generator child: opens PAIRS idle broker/bridge pairs through a beacon's plain door (one fresh room hash
 * per pair), confirms each with a 1-byte ping-pong, reports `ready` over IPC and holds them until told `close`.
 * Several of these share the load so no process needs more descriptors than its limit allows.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { waitForPeer } from '../../runtime/beacon/index.js';

const config = JSON.parse(process.env.CLOUDTASER_PAIR_GENERATOR ?? '{}') as {
  port: number;
  pairs: number;
  host: string;
  batch?: number;
};
const held: Duplex[] = [];

async function openPair(): Promise<void> {
  const hash = randomBytes(32).toString('hex');
  const target = { door: 'plain' as const, host: config.host, port: config.port };
  const [broker, bridge] = await Promise.all([
    waitForPeer({ target, ip: config.host, role: 'broker', hash }),
    waitForPeer({ target, ip: config.host, role: 'bridge', hash }),
  ]);
  const got = once(bridge, 'data');
  broker.write('p');
  await got;
  bridge.pause();
  held.push(broker, bridge);
}

const batch = config.batch ?? 50;
for (let done = 0; done < config.pairs; done += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, config.pairs - done) }, () => openPair()));
}
process.send?.({ type: 'ready', pairs: held.length / 2 });
process.on('message', (message: { type: string }) => {
  if (message.type !== 'close') return;
  for (const stream of held) stream.destroy();
  process.exit(0);
});
process.on('disconnect', () => process.exit(0));
