import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BeaconHandle, parseListenAddress, registerBeaconCommand } from '../../runtime/beacon/index.js';
import { silentLogger } from '../../runtime/core/index.js';
import { type Certs, dialRoom, makeCerts, pairThrough, randomHash, readBytes } from './helpers.js';

let certs: Certs;
let dir: string;

beforeAll(async () => {
  certs = makeCerts();
  dir = await mkdtemp(join(tmpdir(), 'beacon-cmd-'));
  await writeFile(join(dir, 'cert.pem'), certs.beacon.certPem);
  await writeFile(join(dir, 'key.pem'), certs.beacon.keyPem);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function program(onStarted?: (handle: BeaconHandle) => void): Command {
  const root = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerBeaconCommand(root, { onStarted, logger: silentLogger });
  return root;
}

/** `beacon serve` on a free loopback port with the test certificate. */
const serve = () => [
  'beacon',
  'serve',
  '--listen',
  '127.0.0.1:0',
  '--tls-cert',
  join(dir, 'cert.pem'),
  '--tls-key',
  join(dir, 'key.pem'),
];

describe('beacon serve command', () => {
  it('starts a beacon from flags, applies every bound flag, serves metrics, and stops on SIGTERM', async () => {
    let handle!: BeaconHandle;
    await program((started) => {
      handle = started;
    }).parseAsync(
      [
        ...serve(),
        '--metrics-listen',
        '127.0.0.1:0',
        '--plain',
        '--allow-anonymous-bridges',
        '--max-waiting-per-hash',
        '3',
        '--keepalive-ms',
        '5000',
        '--ws-max-payload',
        '65536',
      ],
      { from: 'user' },
    );
    expect(handle.limits).toMatchObject({
      maxWaitingPerHash: 3,
      keepaliveIntervalMs: 5000,
      webSocketMaxPayloadBytes: 65536,
    });
    expect(handle.limits.bridgeWaitMs).toBe(600_000);
    expect((await fetch(`${handle.metricsUrl}/readyz`)).status).toBe(200);
    process.emit('SIGTERM', 'SIGTERM');
    await expect
      .poll(async () =>
        fetch(`${handle.metricsUrl}/healthz`).then(
          () => 'up',
          () => 'down',
        ),
      )
      .toBe('down');
  });

  it('on SIGTERM keeps a relay running through its grace, and a second signal cuts it', async () => {
    let handle!: BeaconHandle;
    await program((started) => {
      handle = started;
    }).parseAsync(
      [
        ...serve(),
        '--metrics-listen',
        'off',
        '--allow-anonymous-bridges',
        '--shutdown-delay',
        '0',
        '--relay-grace',
        '60s',
      ],
      { from: 'user' },
    );
    const { broker, bridge } = await pairThrough(handle, certs.beacon.certPem);
    bridge.on('data', () => {});

    process.emit('SIGTERM', 'SIGTERM');
    // Pairing nothing more (told `draining`, or no longer listening), but the relay still copies.
    const late = await dialRoom(handle, certs.beacon.certPem, 'broker', randomHash()).catch(
      (err: { code: string }) => err.code,
    );
    expect(late).toMatch(/^CT_BEACON_(DRAINING|UNREACHABLE)$/);
    const echoed = readBytes(broker, 4);
    bridge.removeAllListeners('data');
    bridge.pipe(bridge);
    broker.write('ping');
    expect((await echoed).toString()).toBe('ping');

    const cut = once(broker, 'end');
    broker.resume();
    process.emit('SIGTERM', 'SIGTERM');
    await cut;
    await expect.poll(() => handle.stats().paired).toBe(0);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('refuses to start without a certificate, with a bound below its minimum, or with a bad address', async () => {
    await expect(program().parseAsync(['beacon', 'serve'], { from: 'user' })).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
    });
    const base = [
      'beacon',
      'serve',
      '--tls-cert',
      join(dir, 'cert.pem'),
      '--tls-key',
      join(dir, 'key.pem'),
      '--allow-anonymous-bridges',
    ];
    await expect(
      program().parseAsync(
        [...base, '--listen', '127.0.0.1:0', '--metrics-listen', 'off', '--max-waiting', '0'],
        {
          from: 'user',
        },
      ),
    ).rejects.toMatchObject({ code: 'CT_INVALID_ARGUMENT' });
    await expect(
      program().parseAsync([...base, '--listen', 'nonsense'], { from: 'user' }),
    ).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
    });
    await expect(
      program().parseAsync([...base, '--listen', '127.0.0.1:0', '--relay-grace', 'soon'], { from: 'user' }),
    ).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringContaining('--relay-grace'),
    });
    await expect(
      program().parseAsync([...base, '--tls-key', join(dir, 'missing.pem')], { from: 'user' }),
    ).rejects.toMatchObject({ code: 'CT_INVALID_ARGUMENT' });
  });

  it('reads IPv4, IPv6, name and any-address listen addresses', () => {
    expect(parseListenAddress('0.0.0.0:443', '--listen')).toEqual({ host: '0.0.0.0', port: 443 });
    expect(parseListenAddress('[::]:8443', '--listen')).toEqual({ host: '::', port: 8443 });
    expect(parseListenAddress('localhost:0', '--listen')).toEqual({ host: 'localhost', port: 0 });
    // No host: every address of every family (what the charts pass, so IPv6-only pods are reachable).
    expect(parseListenAddress(':8443', '--listen')).toEqual({ host: '', port: 8443 });
    expect(() => parseListenAddress('::1:443', '--listen')).toThrow();
    expect(() => parseListenAddress('x:70000', '--listen')).toThrow();
  });
});
