/**
 * Clock skew on certificate validity: a broker certificate that is not yet valid or already expired (as a
 * bridge with a skewed clock would see it), or an expired bridge certificate, is refused by the operational
 * mutual TLS with a reason that names the problem; no tunnel opens.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import { acceptTunnel, openTunnel } from '../../runtime/tunnel/index.js';
import { childEntry } from '../load/processes.js';
import { duplexPair } from '../runtime/duplex-pair.js';

const DAY_MS = 86_400_000;
const ca = createCertificateAuthority({ commonName: 'skew test ca' });
const goodBroker = issueCertificate(ca, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'] });
const goodBridge = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });

function leaf(role: 'broker' | 'bridge', notBefore: Date, days: number) {
  return issueCertificate(ca, {
    commonName: `cloudtaser-${role}`,
    extKeyUsage: [role === 'broker' ? 'serverAuth' : 'clientAuth'],
    notBefore,
    days,
  });
}

async function handshake(
  broker: { certPem: string; keyPem?: string },
  bridge: { certPem: string; keyPem?: string },
) {
  const [brokerEnd, bridgeEnd] = duplexPair();
  const common = { caCertPem: ca.certPem, handshakeTimeoutMs: 3_000, logger: silentLogger };
  const results = await Promise.allSettled([
    acceptTunnel(brokerEnd, { ...common, certPem: broker.certPem, keyPem: broker.keyPem! }),
    openTunnel(bridgeEnd, { ...common, certPem: bridge.certPem, keyPem: bridge.keyPem! }),
  ]);
  for (const result of results) if (result.status === 'fulfilled') result.value.mux.close();
  return results;
}

describe('certificate validity under clock skew', () => {
  it('opens the tunnel with certificates inside their validity (control)', async () => {
    const results = await handshake(goodBroker, goodBridge);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
  });

  // WAS A BUG (runtime/tunnel/tls.ts awaitSecure): on the bridge (TLS client) end, awaitSecure resolves on 'secure',
  // which fires BEFORE Node verifies the peer; Node then destroys the socket with CERT_NOT_YET_VALID /
  // CERT_HAS_EXPIRED as an 'error' event nobody listens to any more: an uncaught exception that ends the bridge
  // process (a broker certificate expires after 1 year, so one stale broker can take a bridge down). The
  // message that does come out says "not issued by the cluster CA", which misleads. Fix idea: wait for
  // 'secureConnect' only on the client side and keep an 'error' listener until the socket is handed over.
  // Fixed in tls.ts (wait for 'secureConnect' only); still run in a child process so a regression shows up as
  // a failed assertion instead of a crashed test run.
  for (const [skew, reason] of [
    ['future', /not yet valid/i],
    ['expired', /expired/i],
  ] as const) {
    it(`refuses a broker certificate that is ${skew === 'future' ? 'not yet valid (bridge clock behind)' : 'expired (bridge clock ahead)'} without crashing the bridge, saying why`, async () => {
      const entry = await childEntry('tunnel-skew-child');
      const run = spawnSync(process.execPath, [entry], {
        env: { ...process.env, CLOUDTASER_SKEW: skew },
        encoding: 'utf8',
        timeout: 15_000,
      });
      expect(run.status).toBe(0);
      const outcome = JSON.parse(run.stdout.trim()) as { broker: string; bridge: string };
      expect(outcome.bridge).toMatch(/^CT_(TUNNEL_CLOSED|PKI_INVALID_CERT): /);
      expect(outcome.bridge).toMatch(reason);
      expect(outcome.broker).not.toBe('open');
    });
  }

  it('refuses an expired bridge client certificate on the broker side; no tunnel opens', async () => {
    const results = await handshake(goodBroker, leaf('bridge', new Date(Date.now() - 3 * DAY_MS), 1));
    expect(results[0].status).toBe('rejected');
    const brokerSide = (results[0] as PromiseRejectedResult).reason;
    expect(brokerSide.code).toBe('CT_TUNNEL_CLOSED');
    expect(results[1].status).toBe('rejected');
  });

  // WAS A WEAKNESS (runtime/tunnel/tls.ts acceptTls): the broker reported "the peer closed the connection"
  // instead of the expiry, because Node's TLS server drops a client whose certificate fails verification without
  // emitting the reason. acceptTls now enforces the client certificate itself and names the OpenSSL reason.
  it('names the expiry in the broker-side refusal of an expired bridge certificate', async () => {
    const results = await handshake(goodBroker, leaf('bridge', new Date(Date.now() - 3 * DAY_MS), 1));
    expect((results[0] as PromiseRejectedResult).reason.message).toMatch(/expired/i);
  });

  it('accepts a few minutes of skew because not-before is backdated at issue', async () => {
    // A broker whose clock runs 4 minutes behind the bridge's: the 5-minute backdate covers it.
    const issuedNow = issueCertificate(ca, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'] });
    const validFrom = Date.parse(
      new (await import('node:crypto')).X509Certificate(issuedNow.certPem).validFrom,
    );
    expect(Date.now() - validFrom).toBeGreaterThanOrEqual(4 * 60_000);
  });
});
