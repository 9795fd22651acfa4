/**
 * Attack: a broker with a valid broker certificate uses the bridge's migration endpoint to reach OpenBao with
 * the bridge's credentials. It runs against the real `bridge run` process (dist/runtime/cli/main.js) and a
 * rogue broker written here: it bootstraps through the init room like any broker of an unattested cluster,
 * then speaks the tunnel protocol and sends whatever migration requests it likes.
 *
 * It tries (issue 11): migration on a cluster whose registration does not enable it; an offline dictionary
 * probe of a secret someone else wrote (the old GET answered an unsalted SHA-256 of it); an equality oracle
 * (a PUT that behaves differently when it guesses the stored value); overwriting a value written by someone
 * else, or by the migration of another Secret.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type BeaconHandle, createBeacon, dialBeacon } from '../../runtime/beacon/index.js';
import { bootstrapBroker } from '../../runtime/broker/bootstrap.js';
import { initHash, operationalHash } from '../../runtime/core/hashes.js';
import { silentLogger } from '../../runtime/core/log.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { privateKeyToPem } from '../../runtime/pki/index.js';
import { ensureBeaconClientCa, registerCluster } from '../../runtime/registration/index.js';
import { acceptTunnel, type TunnelMux } from '../../runtime/tunnel/index.js';
import { provisionIdentities } from '../openbao-identities.js';
import { beaconCert, FAST_BEACON_LIMITS } from '../runtime/fixtures.js';
import { builtCli } from '../support/built-cli.js';

const root = resolve(import.meta.dirname, '../..');
const cli = builtCli();

const NS = 'legacy';
/** What someone else (an admin, another tool) stored at the path migration would use. */
const FOREIGN_VALUE = { password: 'correct-horse-7' };
const DICTIONARY = ['password', 'hunter2', 'letmein', 'correct-horse-7', 'Winter2024!'];

let dir: string;
let openbao: OpenBaoTestServer;
let admin: OpenBaoClient;
let beacon: BeaconHandle;
let bridge: ChildProcess | undefined;
let bridgeStderr = '';
const tunnels: TunnelMux[] = [];
const disabled = randomUUID();
const enabled = randomUUID();
let enabledNamespace: string;
let disabledNamespace: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cloudtaser-adversary-'));
  openbao = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: openbao.address, token: openbao.rootToken });
  const identities = await provisionIdentities(admin);
  const registrar = admin.withToken(identities.registrarToken);
  disabledNamespace = (await registerCluster(registrar, { fingerprint: disabled })).namespace;
  enabledNamespace = (await registerCluster(registrar, { fingerprint: enabled, migration: true })).namespace;
  await admin.withNamespace(enabledNamespace).kvWrite('secret', `k8s/${NS}/db`, FOREIGN_VALUE);

  // The beacon admits bridges with a certificate from the beacon client CA in OpenBao, as deployed.
  const beaconClientCa = await ensureBeaconClientCa(admin);
  beacon = await createBeacon({
    host: '127.0.0.1',
    port: 0,
    tls: beaconCert,
    bridgeCaPems: [beaconClientCa.certPem],
    limits: FAST_BEACON_LIMITS,
  });
  const beaconCa = join(dir, 'beacon-ca.pem');
  await writeFile(beaconCa, beaconCert.certPem);
  bridge = spawn(
    process.execPath,
    [
      cli,
      'bridge',
      'run',
      '--secretstore-address',
      openbao.address,
      '--beacon',
      `127.0.0.1:${beacon.port}`,
      '--beacon-ca',
      beaconCa,
      '--poll-interval',
      '200ms',
      '--step-timeout',
      '3s',
      '--backoff-max',
      '1s',
    ],
    {
      cwd: root,
      // The bridge's own least-privilege identity, as deployed: AppRole with the shipped bridge policy.
      env: {
        ...process.env,
        CLOUDTASER_LOG_LEVEL: 'warn',
        CLOUDTASER_APPROLE_ROLE_ID: identities.bridgeRoleId,
        CLOUDTASER_APPROLE_SECRET_ID: identities.bridgeSecretId,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  bridge.stderr?.on('data', (chunk: Buffer) => {
    bridgeStderr = (bridgeStderr + chunk.toString()).slice(-4000);
  });
}, 30_000);

afterAll(async () => {
  for (const tunnel of tunnels) tunnel.close({ code: 'CT_TUNNEL_CLOSED', reason: 'test done' });
  if (bridge && bridge.exitCode === null) {
    const exited = new Promise((done) => bridge?.once('exit', done));
    bridge.kill('SIGKILL');
    await exited;
  }
  await beacon?.close();
  await admin?.close();
  await openbao?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const rogues = new Map<string, Promise<TunnelMux>>();
/** One rogue broker per cluster, shared by the tests that attack it. */
function rogueBroker(fingerprint: string): Promise<TunnelMux> {
  let rogue = rogues.get(fingerprint);
  if (!rogue) {
    rogue = startRogueBroker(fingerprint);
    rogues.set(fingerprint, rogue);
  }
  return rogue;
}

/** The rogue broker: bootstraps like any broker (the cluster is unattested), then holds a tunnel of its own. */
async function startRogueBroker(fingerprint: string): Promise<TunnelMux> {
  const address = `127.0.0.1:${beacon.port}`;
  const credentials = await vi.waitFor(
    async () => {
      const init = await dialBeacon({
        address,
        role: 'broker',
        hash: initHash(fingerprint),
        caCertPem: beaconCert.certPem,
      });
      return bootstrapBroker(init.stream, { fingerprint, stepTimeoutMs: 3_000, logger: silentLogger });
    },
    { timeout: 20_000, interval: 100 },
  );
  const session = await vi.waitFor(
    async () => {
      const operational = await dialBeacon({
        address,
        role: 'broker',
        hash: operationalHash(credentials.caCertDer),
        caCertPem: beaconCert.certPem,
      });
      return acceptTunnel(operational.stream, {
        caCertPem: credentials.caCertPem,
        certPem: credentials.brokerCertPem,
        keyPem: privateKeyToPem(credentials.privateKey),
        handshakeTimeoutMs: 3_000,
        logger: silentLogger,
      });
    },
    { timeout: 20_000, interval: 100 },
  );
  tunnels.push(session.mux);
  return session.mux;
}

interface Answer {
  status: number;
  text: string;
  body: Record<string, unknown>;
}

async function send(tunnel: TunnelMux, method: string, name: string, body?: unknown): Promise<Answer> {
  const response = await tunnel.request(
    {
      method,
      path: `/migration/v1/secrets/${NS}/${name}`,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    },
    body === undefined ? undefined : JSON.stringify(body),
  );
  const text = response.body.toString('utf8');
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: kept as text for the assertions
  }
  return { status: response.status, text, body: parsed };
}

/** A well-formed migration write as the real broker sends it. */
function migration(data: Record<string, string>, source = { uid: randomUUID(), resourceVersion: '4711' }) {
  return { data, source, nonce: randomBytes(32).toString('base64url') };
}

/** Every digest an offline dictionary attack could compare against (the old GET sent the first one). */
function dictionaryDigests(candidate: string): string[] {
  const sorted = JSON.stringify([['password', candidate]]);
  return [
    createHash('sha256').update(sorted).digest('hex'),
    createHash('sha256')
      .update(JSON.stringify({ password: candidate }))
      .digest('hex'),
    createHash('sha256').update(candidate).digest('hex'),
  ];
}

async function storedAt(namespace: string, name: string) {
  return admin.withNamespace(namespace).kvRead('secret', `k8s/${NS}/${name}`);
}

describe('attack: migration probing through a rogue broker', () => {
  it('refuses migration for a cluster whose registration does not enable it, and writes nothing', async () => {
    const tunnel = await rogueBroker(disabled);
    const before = openbao.requestLog().length;
    const put = await send(tunnel, 'PUT', 'db', migration({ password: 'planted' }));
    const get = await send(tunnel, 'GET', 'db');
    expect(put.status, bridgeStderr).toBe(403);
    expect(put.body.code).toBe('CT_MIGRATION_DISABLED');
    expect(get.status).not.toBe(200);
    // Refused before OpenBao: the bridge did not even look at the cluster's secret mount.
    const touched = openbao
      .requestLog()
      .slice(before)
      .filter((entry) => entry.path.startsWith('/v1/secret/'));
    expect(touched).toEqual([]);
    expect(await storedAt(disabledNamespace, 'db')).toBeUndefined();
  }, 60_000);

  it('answers nothing derived from a value someone else stored: no digest, no equality oracle', async () => {
    const tunnel = await rogueBroker(enabled);
    const answers: Answer[] = [await send(tunnel, 'GET', 'db'), await send(tunnel, 'HEAD', 'db')];
    // The equality oracle: one PUT per guess, the same source each time; the right guess must look like the others.
    const source = { uid: randomUUID(), resourceVersion: '1' };
    const guesses: Answer[] = [];
    for (const candidate of DICTIONARY)
      guesses.push(await send(tunnel, 'PUT', 'db', migration({ password: candidate }, source)));
    answers.push(...guesses);

    const offline = DICTIONARY.flatMap(dictionaryDigests);
    for (const answer of answers) {
      for (const digest of offline) expect(answer.text).not.toContain(digest);
      expect(answer.text).not.toContain(FOREIGN_VALUE.password);
    }
    expect(answers[0].status).not.toBe(200);
    // Byte for byte the same answer, right guess or wrong.
    const shapes = guesses.map((g) => `${g.status} ${g.text}`);
    expect(new Set(shapes).size, shapes.join(' | ')).toBe(1);
    expect(guesses[0].status).toBe(409);
    expect(guesses[0].body.code).toBe('CT_MIGRATION_CONFLICT');
    const stored = await storedAt(enabledNamespace, 'db');
    expect(stored?.data).toEqual(FOREIGN_VALUE);
    expect(stored?.version).toBe(1);
  }, 60_000);

  it('cannot overwrite a different value, whether an admin or the migration of another Secret wrote it', async () => {
    const tunnel = await rogueBroker(enabled);
    const overwrite = await send(tunnel, 'PUT', 'db', migration({ password: 'attacker-chosen' }));
    expect(overwrite.status).toBe(409);
    expect(overwrite.body.code).toBe('CT_MIGRATION_CONFLICT');
    expect((await storedAt(enabledNamespace, 'db'))?.data).toEqual(FOREIGN_VALUE);

    // A value the migration of Secret A wrote is not Secret B's to replace.
    const first = await send(tunnel, 'PUT', 'api', migration({ token: 'from-secret-a' }));
    expect(first.status, first.text).toBe(200);
    const other = await send(tunnel, 'PUT', 'api', migration({ token: 'from-secret-b' }));
    expect(other.status).toBe(409);
    expect(other.body.code).toBe('CT_MIGRATION_CONFLICT');
    const stored = await storedAt(enabledNamespace, 'api');
    expect(stored?.data).toEqual({ token: 'from-secret-a' });
    expect(stored?.version).toBe(1);
  }, 60_000);
});
