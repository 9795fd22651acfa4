/**
 * The beacon's lifecycle: a start that fails halfway gives its port back, and close() is one operation however
 * often it is called.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBeacon } from '../../runtime/beacon/index.js';
import { freePort, isListening, occupyPort } from '../ports.js';
import { makeCerts } from './helpers.js';

const certs = makeCerts();
const held: Array<{ release(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(held.splice(0).map((port) => port.release()));
});

function beaconOn(port: number, metricsPort: number) {
  return createBeacon({
    host: '127.0.0.1',
    port,
    tls: certs.beacon,
    allowAnonymousBridges: true,
    metrics: { host: '127.0.0.1', port: metricsPort },
  });
}

describe('beacon lifecycle', () => {
  it('gives its port back when the metrics port cannot listen', async () => {
    const port = await freePort();
    const taken = await occupyPort();
    held.push(taken);
    await expect(beaconOn(port, taken.port)).rejects.toMatchObject({ code: 'CT_LISTEN_FAILED' });
    expect(await isListening(port)).toBe(false);
  });

  it('returns the first close() to every later call, which resolves only once both ports are closed', async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    const beacon = await beaconOn(port, metricsPort);
    expect(await isListening(port)).toBe(true);
    expect(await isListening(metricsPort)).toBe(true);

    const first = beacon.close();
    const second = beacon.close();
    expect(second).toBe(first);
    await second;
    expect(await isListening(port)).toBe(false);
    expect(await isListening(metricsPort)).toBe(false);
    expect(beacon.close()).toBe(first);
  });
});
