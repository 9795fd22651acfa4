/**
 * `beacon serve` re-reads its certificate and bridge CA files when they change: new connections see the new
 * certificate and the new CAs without a restart (certificate rotation by cert-manager or a ConfigMap update);
 * connections already open keep what they negotiated, and a half-written change keeps the old material.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type BeaconHandle,
  RAW_ALPN,
  registerBeaconCommand,
  waitForPeer,
} from '../../runtime/beacon/index.js';
import {
  createCertificateAuthority,
  issueCertificate,
  issueSelfSignedSync,
} from '../../runtime/pki/index.js';
import { waitUntil } from '../support/wait.js';
import { captureLogger, makeCerts, randomHash, startBeacon } from './helpers.js';

let dir: string;
const running: BeaconHandle[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'beacon-reload-'));
});
afterEach(async () => {
  for (const handle of running.splice(0)) await handle.close();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function beaconCertificate(name: string) {
  return issueSelfSignedSync({ commonName: name, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
}

async function serve(args: string[], logger = captureLogger()): Promise<BeaconHandle> {
  let handle!: BeaconHandle;
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerBeaconCommand(program, { onStarted: (started) => (handle = started), logger: logger.logger });
  await program.parseAsync(
    [
      'beacon',
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--metrics-listen',
      'off',
      '--tls-reload-interval',
      '100',
      ...args,
    ],
    { from: 'user' },
  );
  running.push(handle);
  return handle;
}

/** The certificate a new TLS connection to the beacon is served (trusting whatever it presents). */
async function servedCertificate(port: number): Promise<X509Certificate> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    rejectUnauthorized: false,
    ALPNProtocols: [RAW_ALPN],
  });
  await once(socket, 'secureConnect');
  const certificate = socket.getPeerX509Certificate()!;
  socket.destroy();
  return certificate;
}

describe('beacon serve reloads changed files', () => {
  it('serves a replaced certificate to new connections without a restart, and keeps the old one while the key does not match yet', async () => {
    const first = beaconCertificate('beacon before rotation');
    const second = beaconCertificate('beacon after rotation');
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    await writeFile(certFile, first.certPem);
    await writeFile(keyFile, first.keyPem);
    const log = captureLogger();
    const beacon = await serve(
      ['--tls-cert', certFile, '--tls-key', keyFile, '--allow-anonymous-bridges'],
      log,
    );
    expect((await servedCertificate(beacon.port)).subject).toContain('beacon before rotation');

    // Half-way through a rotation: the new certificate is written, its key not yet. The old pair stays.
    await writeFile(certFile, second.certPem);
    await waitUntil(() => log.lines.some((line) => line.event === 'tls_files.reload_failed'), {
      timeoutMs: 5_000,
    });
    expect((await servedCertificate(beacon.port)).subject).toContain('beacon before rotation');

    await writeFile(keyFile, second.keyPem);
    await waitUntil(() => log.lines.some((line) => line.event === 'tls_files.reloaded'), {
      timeoutMs: 5_000,
    });
    expect((await servedCertificate(beacon.port)).subject).toContain('beacon after rotation');
    // No key material in what was logged about the reload.
    expect(log.raw.join('\n')).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
  });

  it('refuses to start with an expired certificate, and keeps serving the valid one when an expired one is written', async () => {
    // An outside drill: the beacon started with an expired certificate, and reloaded one, logging only
    // `tls_files.reloaded` while every broker failed "certificate has expired".
    const expired = issueSelfSignedSync({
      commonName: 'beacon expired',
      dnsNames: ['localhost'],
      notBefore: new Date(Date.now() - 3 * 86_400_000),
      days: 1,
    });
    const certFile = join(dir, 'expiring.crt');
    const keyFile = join(dir, 'expiring.key');
    await writeFile(certFile, expired.certPem);
    await writeFile(keyFile, expired.keyPem);
    await expect(
      serve(['--tls-cert', certFile, '--tls-key', keyFile, '--allow-anonymous-bridges']),
    ).rejects.toMatchObject({ code: 'CT_INVALID_ARGUMENT', message: expect.stringMatching(/expired at /) });

    const valid = beaconCertificate('beacon valid');
    await writeFile(certFile, valid.certPem);
    await writeFile(keyFile, valid.keyPem);
    const log = captureLogger();
    const beacon = await serve(
      ['--tls-cert', certFile, '--tls-key', keyFile, '--allow-anonymous-bridges'],
      log,
    );
    await writeFile(keyFile, expired.keyPem);
    await writeFile(certFile, expired.certPem);
    await waitUntil(
      () =>
        log.lines.some(
          (line) => line.event === 'tls_files.reload_failed' && String(line.reason).includes('expired at'),
        ),
      { timeoutMs: 5_000 },
    );
    expect(log.lines.some((line) => line.event === 'tls_files.reloaded')).toBe(false);
    expect((await servedCertificate(beacon.port)).subject).toContain('beacon valid');
  });

  it('admits bridges of a CA added to the --bridge-ca file and refuses those of a CA removed from it', async () => {
    const cert = beaconCertificate('beacon');
    await writeFile(join(dir, 'b.crt'), cert.certPem);
    await writeFile(join(dir, 'b.key'), cert.keyPem);
    const oldCa = createCertificateAuthority({ commonName: 'old beacon client CA' });
    const newCa = createCertificateAuthority({ commonName: 'new beacon client CA' });
    const caFile = join(dir, 'bridge-ca.pem');
    await writeFile(caFile, oldCa.certPem);
    const log = captureLogger();
    const beacon = await serve(
      ['--tls-cert', join(dir, 'b.crt'), '--tls-key', join(dir, 'b.key'), '--bridge-ca', caFile],
      log,
    );
    const bridgeOf = (ca: typeof oldCa) => {
      const issued = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });
      return { certPem: issued.certPem, keyPem: issued.keyPem! };
    };
    const outcome = async (ca: typeof oldCa) => {
      const controller = new AbortController();
      try {
        return await new Promise<string>((resolve) => {
          waitForPeer({
            target: { door: 'tls', host: 'localhost', port: beacon.port },
            ip: '127.0.0.1',
            role: 'bridge',
            hash: randomHash(),
            caCertPem: cert.certPem,
            clientCertificate: bridgeOf(ca),
            signal: controller.signal,
            onWaiting: () => resolve('waiting'),
          }).catch((err: { code: string }) => resolve(err.code));
        });
      } finally {
        controller.abort();
      }
    };
    expect(await outcome(oldCa)).toBe('waiting');
    expect(await outcome(newCa)).toBe('CT_BEACON_UNAUTHENTICATED');
    // Rotation, step 1: the bundle holds both CAs while bridges move over.
    await writeFile(caFile, `${oldCa.certPem}${newCa.certPem}`);
    await waitUntil(() => log.lines.some((line) => line.event === 'bridge_cas_updated'), {
      timeoutMs: 5_000,
    });
    expect(await outcome(newCa)).toBe('waiting');
    expect(await outcome(oldCa)).toBe('waiting');
    // Step 3: the old CA is removed once no bridge uses it.
    await writeFile(caFile, newCa.certPem);
    await waitUntil(() => log.lines.filter((line) => line.event === 'bridge_cas_updated').length >= 2, {
      timeoutMs: 5_000,
    });
    expect(await outcome(oldCa)).toBe('CT_BEACON_UNAUTHENTICATED');
    expect(await outcome(newCa)).toBe('waiting');
    // A file that is not a CA bundle is refused and the CAs in force stay.
    await writeFile(caFile, 'garbage');
    await waitUntil(() => log.lines.filter((line) => line.event === 'tls_files.reload_failed').length >= 1, {
      timeoutMs: 5_000,
    });
    expect(await outcome(newCa)).toBe('waiting');
  });

  it('refuses to start without --bridge-ca unless --allow-anonymous-bridges is given, and then warns', async () => {
    const cert = beaconCertificate('beacon');
    await writeFile(join(dir, 'c.crt'), cert.certPem);
    await writeFile(join(dir, 'c.key'), cert.keyPem);
    const base = ['--tls-cert', join(dir, 'c.crt'), '--tls-key', join(dir, 'c.key')];
    await expect(serve(base)).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringMatching(/--bridge-ca <file>.*--allow-anonymous-bridges/),
    });
    await expect(serve([...base, '--bridge-ca', join(dir, 'missing.pem')])).rejects.toMatchObject({
      code: 'CT_INVALID_ARGUMENT',
      message: expect.stringMatching(/missing\.pem/),
    });
    const log = captureLogger();
    await serve([...base, '--allow-anonymous-bridges'], log);
    expect(log.lines).toContainEqual(expect.objectContaining({ event: 'anonymous_bridges' }));
  });
});

describe('the certificate the beacon serves, as a metric', () => {
  it('exports its notAfter, and the reloaded one once it is in use (an outside SRE drill found none to alert on)', async () => {
    const certs = makeCerts();
    const beacon = await startBeacon(certs, { metrics: true });
    running.push(beacon);
    const notAfter = async () =>
      Number(
        /cloudtaser_beacon_certificate_not_after_seconds (\d+)/.exec(
          await (await fetch(`${beacon.metricsUrl}/metrics`)).text(),
        )?.[1],
      );
    expect(await notAfter()).toBe(
      Math.floor(Date.parse(new X509Certificate(certs.beacon.certPem).validTo) / 1000),
    );
    const shortLived = issueSelfSignedSync({ commonName: 'beacon', dnsNames: ['localhost'], days: 3 });
    beacon.updateTls({ certPem: shortLived.certPem, keyPem: shortLived.keyPem });
    expect(await notAfter()).toBe(
      Math.floor(Date.parse(new X509Certificate(shortLived.certPem).validTo) / 1000),
    );
    expect((await notAfter()) - Date.now() / 1000).toBeLessThan(3 * 86_400 + 60);
  });
});
