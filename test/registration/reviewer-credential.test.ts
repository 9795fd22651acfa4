/**
 * The TokenReview reviewer credential OpenBao holds (`token_reviewer_jwt` in the cluster's Kubernetes auth) and
 * the hash of it registration records for the bridge (`system/tokenreview`) must match after every register run
 * that succeeds, whatever failed or ran at the same time: the bridge refuses every TokenReview whose credential
 * does not match, and then no pod of the cluster can log in. OpenBao never returns the credential, so a proxy
 * in front of it shows what it accepted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import {
  deregisterCluster,
  getClusterStatus,
  KUBERNETES_AUTH_MOUNT,
  loadReviewerSha256,
  registerCluster,
} from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { type CaptureProxy, startCaptureProxy } from '../support/capture-proxy.js';
import { waitUntil } from '../support/wait.js';

const AUTH_CONFIG = /^\/v1\/auth\/[^/]+\/config$/;

let server: OpenBaoTestServer;
let proxy: CaptureProxy;
let admin: OpenBaoClient;
let registrarToken: string;
/** Registration through the proxy with the shipped registrar policy. */
let registrar: OpenBaoClient;
const clients: OpenBaoClient[] = [];

function registrarClient(options: { retries?: number; timeoutMs?: number } = {}): OpenBaoClient {
  const client = new OpenBaoClient({
    address: proxy.address,
    token: registrarToken,
    retries: options.retries ?? 2,
    retryBaseDelayMs: 1,
    timeoutMs: options.timeoutMs,
  });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  proxy = await startCaptureProxy(server.address);
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken, retries: 0 });
  registrarToken = (await provisionIdentities(admin)).registrarToken;
  registrar = registrarClient();
});
afterAll(async () => {
  for (const client of clients) await client.close();
  await admin?.close();
  await proxy?.close();
  await server?.close();
});

function acceptedAuthConfigWrites() {
  return proxy.answered.filter(
    (r) => r.method !== 'GET' && AUTH_CONFIG.test(r.path) && r.status >= 200 && r.status < 300,
  );
}

/** SHA-256 of the credential OpenBao holds now: the one in the last auth config write it accepted. */
function sha256OfCredentialOpenBaoSends(): string {
  const writes = acceptedAuthConfigWrites();
  const credential = JSON.parse(writes[writes.length - 1].body).token_reviewer_jwt as string;
  return createHash('sha256').update(credential, 'utf8').digest('hex');
}

async function recordedSha256(fingerprint: string): Promise<string | undefined> {
  const status = await getClusterStatus(admin, { fingerprint });
  return loadReviewerSha256(admin.withNamespace(status.namespace));
}

describe('reviewer credential and its recorded hash', () => {
  it('match after a re-run, when a re-registration (deregistered without --purge) failed sealed at the auth config write', async () => {
    const fingerprint = randomUUID();
    await registerCluster(registrar, { fingerprint });
    await deregisterCluster(registrar, { fingerprint });
    // Sealed beyond the client's retries exactly at the auth config write, after the record was written.
    server.injectFault({ method: 'POST', pathPattern: AUTH_CONFIG, sealed: true, times: 3 });
    await expect(registerCluster(registrar, { fingerprint })).rejects.toMatchObject({
      code: 'CT_OPENBAO_SEALED',
    });
    await registerCluster(registrar, { fingerprint });
    expect(await recordedSha256(fingerprint)).toBe(sha256OfCredentialOpenBaoSends());
  });

  it('match after a re-run, when an earlier run timed out on the auth config write and it landed after that re-run', async () => {
    const fingerprint = randomUUID();
    const writesBefore = acceptedAuthConfigWrites().length;
    // The write reaches OpenBao but is slow to apply (a busy active node): the client gives up, it lands later.
    server.injectFault({ method: 'POST', pathPattern: AUTH_CONFIG, delayMs: 600 });
    await expect(
      registerCluster(registrarClient({ retries: 0, timeoutMs: 150 }), { fingerprint }),
    ).rejects.toMatchObject({ code: 'CT_OPENBAO_TIMEOUT' });
    await registerCluster(registrar, { fingerprint });
    await waitUntil(() => acceptedAuthConfigWrites().length >= writesBefore + 2, {
      what: 'the timed-out auth config write to land',
    });
    // The bridge's refusal message advises a re-run: it must leave the pair matching.
    await registerCluster(registrar, { fingerprint });
    expect(await recordedSha256(fingerprint)).toBe(sha256OfCredentialOpenBaoSends());
  });

  it('match after two registers of one cluster at once (the CLI and the provider) whose writes interleave', async () => {
    const fingerprint = randomUUID();
    // The first run's auth config write is slow to apply; the second run overtakes it.
    server.injectFault({ method: 'POST', pathPattern: AUTH_CONFIG, delayMs: 300 });
    const seen = proxy.arrived.length;
    const first = registerCluster(registrar, { fingerprint });
    await waitUntil(
      () => proxy.arrived.slice(seen).some((r) => r.method === 'POST' && AUTH_CONFIG.test(r.path)),
      { what: "the first run's auth config write" },
    );
    await Promise.all([first, registerCluster(registrarClient(), { fingerprint })]);
    expect(await recordedSha256(fingerprint)).toBe(sha256OfCredentialOpenBaoSends());
  });

  it('a re-run repairs a pair that drifted apart (another credential in the auth config than the one recorded)', async () => {
    const fingerprint = randomUUID();
    const { namespace } = await registerCluster(registrar, { fingerprint });
    const config = (
      await admin
        .withNamespace(namespace)
        .request<{ data: Record<string, unknown> }>('GET', `auth/${KUBERNETES_AUTH_MOUNT}/config`)
    ).body!.data;
    // What a register run before this fix could leave: OpenBao holds a credential other than the recorded one.
    await registrar.withNamespace(namespace).writeKubernetesAuthConfig(KUBERNETES_AUTH_MOUNT, {
      kubernetesHost: String(config.kubernetes_host),
      kubernetesCaCert: String(config.kubernetes_ca_cert),
      disableLocalCaJwt: true,
      tokenReviewerJwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.c2lnbmF0dXJl',
    });
    await registerCluster(registrar, { fingerprint });
    expect(await recordedSha256(fingerprint)).toBe(sha256OfCredentialOpenBaoSends());
  });

  it('stay the same across re-runs, and change with a new cluster CA (deregister, then register)', async () => {
    const fingerprint = randomUUID();
    await registerCluster(registrar, { fingerprint });
    const first = await recordedSha256(fingerprint);
    const again = await registerCluster(registrar, { fingerprint });
    expect(again.changed).toBe(false);
    expect(await recordedSha256(fingerprint)).toBe(first);
    expect(sha256OfCredentialOpenBaoSends()).toBe(first);
    await deregisterCluster(registrar, { fingerprint });
    await registerCluster(registrar, { fingerprint });
    const rotated = await recordedSha256(fingerprint);
    expect(rotated).not.toBe(first);
    expect(sha256OfCredentialOpenBaoSends()).toBe(rotated);
  });
});
