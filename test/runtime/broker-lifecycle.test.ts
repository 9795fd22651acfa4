/**
 * The broker's listeners over its lifetime: a start that fails at a later step closes the listeners the earlier
 * steps opened, and close() is one operation however often it is called. No beacon is needed: the tunnel stays
 * down, and the webhook and probe port do not wait for it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type BrokerOptions, startBroker } from '../../runtime/broker/index.js';
import { freePort, isListening, occupyPort } from '../ports.js';

const FINGERPRINT = '5b2a6f0e-3c1d-4e8f-9a7b-2c4d6e8f0a1b';

const held: Array<{ release(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(held.splice(0).map((port) => port.release()));
});

async function occupy(): Promise<{ port: number }> {
  const port = await occupyPort();
  held.push(port);
  return port;
}

function brokerOptions(webhookPort: number, healthPort: number): BrokerOptions {
  return {
    fingerprint: FINGERPRINT,
    // Nothing listens here: the tunnel stays down.
    beacons: ['127.0.0.1:9'],
    webhook: {
      host: '127.0.0.1',
      port: webhookPort,
      dnsNames: ['localhost'],
      injection: { image: 'ghcr.io/cloudtaser/cloudtaser-operator:test' },
    },
    health: { host: '127.0.0.1', port: healthPort },
  };
}

describe('broker lifecycle', () => {
  it('closes the webhook it already opened when the probe port cannot listen', async () => {
    const webhookPort = await freePort();
    const taken = await occupy();
    await expect(startBroker(brokerOptions(webhookPort, taken.port))).rejects.toMatchObject({
      code: 'CT_LISTEN_FAILED',
    });
    expect(await isListening(webhookPort)).toBe(false);
  });

  it('leaves nothing listening when the webhook itself cannot listen', async () => {
    const taken = await occupy();
    const healthPort = await freePort();
    await expect(startBroker(brokerOptions(taken.port, healthPort))).rejects.toMatchObject({
      code: 'CT_LISTEN_FAILED',
    });
    expect(await isListening(healthPort)).toBe(false);
  });

  it('refuses to start when its pod API port is taken, before any bootstrap, and leaves nothing listening', async () => {
    // Before: the pod API was bound only after a bootstrap, so a broker that could never serve pods took the
    // cluster over from one that could (CT_BROKER_REPLACED) and then retried EADDRINUSE forever.
    const taken = await occupy();
    const webhookPort = await freePort();
    const healthPort = await freePort();
    const options: BrokerOptions = {
      ...brokerOptions(webhookPort, healthPort),
      podApi: { host: '127.0.0.1', port: taken.port, dnsNames: ['localhost'] },
    };
    await expect(startBroker(options)).rejects.toMatchObject({
      code: 'CT_LISTEN_FAILED',
      message: expect.stringMatching(/^cannot listen for the pod API on 127\.0\.0\.1:\d+: .*EADDRINUSE/),
    });
    expect(await isListening(webhookPort)).toBe(false);
    expect(await isListening(healthPort)).toBe(false);
  });

  it('holds a free pod API port from its start, and gives it back on close', async () => {
    const podApiPort = await freePort();
    const broker = await startBroker({
      ...brokerOptions(await freePort(), await freePort()),
      podApi: { host: '127.0.0.1', port: podApiPort, dnsNames: ['localhost'] },
    });
    // No bootstrap (no beacon answers), yet the port is held: nothing else can take it meanwhile.
    expect(await isListening(podApiPort)).toBe(true);
    await broker.close();
    expect(await isListening(podApiPort)).toBe(false);
  });

  it('returns the first close() to every later call, which resolves only once all listeners are closed', async () => {
    const webhookPort = await freePort();
    const healthPort = await freePort();
    const broker = await startBroker(brokerOptions(webhookPort, healthPort));
    expect(await isListening(webhookPort)).toBe(true);
    expect(await isListening(healthPort)).toBe(true);

    const first = broker.close();
    const second = broker.close();
    expect(second).toBe(first);
    await second;
    expect(broker.status().phase).toBe('stopped');
    expect(await isListening(webhookPort)).toBe(false);
    expect(await isListening(healthPort)).toBe(false);
    // A call after the close finished is the same finished close, not a second shutdown.
    expect(broker.close()).toBe(first);
  });
});
