/**
 * The WebSocket door before pairing. The raw and plain doors refuse an announce as soon as its length header
 * exceeds --max-announce-bytes, and a waiter's first early byte. ws hands over whole messages only and buffers an
 * unfinished one up to --ws-max-payload (1 MiB), so before the fix a client could make the beacon hold about 1 MiB
 * per pending or waiting connection (2,000x the announce bound), up to --max-waiting-per-address times per address.
 * The door now counts the bytes themselves. Found by an adversarial review; both tests failed before the fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BeaconHandle } from '../../runtime/beacon/index.js';
import { waitUntil } from '../support/wait.js';
import { type Certs, captureLogger, makeCerts, randomHash, startBeacon, webSocketClient } from './helpers.js';

let certs: Certs;
let beacon: BeaconHandle;
const log = captureLogger();

beforeAll(async () => {
  certs = makeCerts();
  beacon = await startBeacon(certs, { logger: log.logger });
});
afterAll(async () => {
  await beacon.close();
});

/** Sends pieces of one unfinished binary message while the connection stays open; returns the bytes sent. */
async function sendUnfinished(ws: import('ws').WebSocket, pieces: number): Promise<number> {
  const piece = Buffer.alloc(16 * 1024, 0x20); // JSON whitespace
  let sent = 0;
  for (let i = 0; i < pieces && ws.readyState === ws.OPEN; i++) {
    await new Promise<void>((resolve) => ws.send(piece, { binary: true, fin: false }, () => resolve()));
    sent += piece.length;
  }
  return sent;
}

describe('the WebSocket door before pairing', () => {
  it('refuses an announce that grows past max-announce-bytes before its message ends', async () => {
    const ws = await webSocketClient(beacon, certs);
    ws.on('error', () => {});
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await sendUnfinished(ws, 56); // up to ~900 KiB
    expect(await closed).toBe(1008);
    await waitUntil(() => beacon.stats().pending === 0, { timeoutMs: 3_000, what: 'no pending connection' });
    expect(log.lines).toContainEqual(
      expect.objectContaining({ event: 'rejected', reason: 'announce_too_large' }),
    );
  });

  it('refuses a waiter that starts sending a message before it is paired', async () => {
    const ws = await webSocketClient(beacon, certs);
    ws.on('error', () => {});
    const waiting = new Promise<void>((resolve) =>
      ws.on('message', (data) => String(data).includes('"waiting"') && resolve()),
    );
    ws.send(Buffer.from(JSON.stringify({ v: 1, role: 'broker', hash: randomHash() })));
    await waiting;
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await sendUnfinished(ws, 8);
    expect(await closed).toBe(1008);
    await waitUntil(() => beacon.stats().waiting === 0, { timeoutMs: 3_000, what: 'no waiter' });
    expect(log.lines).toContainEqual(expect.objectContaining({ event: 'rejected', reason: 'early_data' }));
  });
});
