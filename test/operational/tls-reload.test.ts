/**
 * Certificates renewed on disk reach running listeners: the webhook (`webhook.tls.secretName`) and the bridge's
 * TokenReview listener (`bridge.tokenReview.tls.secretName`) read their files again when they change. New
 * connections see the new certificate, without a restart; a half-written renewal (certificate and key that do
 * not belong together) keeps the working certificate and says so in the log.
 */
import type { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridgeTokenReview } from '../../runtime/bridge/index.js';
import { createLogger } from '../../runtime/core/log.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { startTestBroker } from '../runtime/fixtures.js';
import { waitUntil } from '../support/wait.js';

const ca = createCertificateAuthority({ commonName: 'reload test CA' });
let dir: string;
const logs: string[] = [];
const logger = createLogger('tls-reload-test', {
  level: 'info',
  destination: new Writable({
    write(chunk, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  }),
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ct-reload-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function issue(commonName: string) {
  const issued = issueCertificate(ca, {
    commonName,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    extKeyUsage: ['serverAuth'],
  });
  return { certPem: issued.certPem, keyPem: issued.keyPem! };
}

async function writePair(prefix: string, pair: { certPem: string; keyPem: string }) {
  await writeFile(join(dir, `${prefix}.crt`), pair.certPem);
  await writeFile(join(dir, `${prefix}.key`), pair.keyPem);
}

/** The common name of the certificate a fresh TLS connection is served. */
function servedName(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: hostname, port: Number(port), ca: ca.certPem, servername: 'localhost' },
      () => {
        const cert = socket.getPeerX509Certificate() as X509Certificate;
        socket.destroy();
        resolve(/CN=([^\n,]+)/.exec(cert.subject)?.[1] ?? '');
      },
    );
    socket.once('error', reject);
  });
}

describe.each([
  [
    'the webhook',
    async (files: { certFile: string; keyFile: string }) => {
      const broker = await startTestBroker({
        fingerprint: '00000000-0000-4000-8000-00000000beef',
        beacons: ['beacon.test:1'],
        logger,
        webhook: {
          host: '127.0.0.1',
          port: 0,
          tlsFiles: files,
          tlsReloadIntervalMs: 50,
          injection: { image: 'operator:test' },
        },
      });
      return { url: broker.webhookUrl!, close: () => broker.close() };
    },
  ],
  [
    "the bridge's TokenReview listener",
    async (files: { certFile: string; keyFile: string }) => {
      const openbao = new OpenBaoClient({ address: 'http://127.0.0.1:9', token: 'unused' });
      const listener = await startBridgeTokenReview({
        listener: { host: '127.0.0.1', port: 0, tls: { files, intervalMs: 50 } },
        openbao,
        namespaceRoot: 'cloudtaser',
        namespaceOf: () => undefined,
        tunnelFor: () => undefined,
        logger,
      });
      return {
        url: listener.url,
        close: async () => {
          await listener.close();
          await openbao.close();
        },
      };
    },
  ],
] as const)('%s', (what, start) => {
  it('serves a certificate replaced on disk to new connections without a restart, and keeps the old one through a half-written renewal', async () => {
    const prefix = what.replace(/\W+/g, '-');
    await writePair(prefix, issue('first'));
    const files = { certFile: join(dir, `${prefix}.crt`), keyFile: join(dir, `${prefix}.key`) };
    const listener = await start(files);
    try {
      expect(await servedName(listener.url)).toBe('first');
      // Half-written: the new certificate is there, its key not yet.
      const second = issue('second');
      await writeFile(files.certFile, second.certPem);
      await waitUntil(
        () =>
          logs.some(
            (l) =>
              l.includes('"event":"tls_files.reload_failed"') && l.includes('does not belong to its key'),
          ),
        { timeoutMs: 5_000, what: 'the refused half-written renewal in the log' },
      );
      expect(await servedName(listener.url)).toBe('first');
      await writeFile(files.keyFile, second.keyPem);
      await waitUntil(async () => (await servedName(listener.url)) === 'second', {
        timeoutMs: 5_000,
        what: 'the renewed certificate',
      });
      expect(logs.some((l) => l.includes('"event":"tls_files.reloaded"'))).toBe(true);
    } finally {
      await listener.close();
    }
  });
});
