/**
 * `bridge run` with an AppRole login, as docs/openbao-policies.md sets it up (`token_ttl=1h`; 3 s here): the token
 * is renewed and, past the role's max TTL, replaced by a new login, so polls keep working. Before, the bridge
 * logged in once at start; an hour later every poll, bootstrap and trust read failed with permission denied
 * while /readyz stayed 200.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { POLICY_NAMES } from '../../runtime/registration/index.js';
import { APPROLE_MOUNT } from '../openbao-identities.js';
import { freePort } from '../ports.js';
import { builtCli, root } from '../support/built-cli.js';
import { type SecretStore, startSecretStore } from './fixtures.js';

let store: SecretStore;
let child: ChildProcess | undefined;
let stderr = '';

beforeAll(async () => {
  store = await startSecretStore();
  await store.register();
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await store?.close();
});

it('keeps polling OpenBao past its AppRole token TTL and max TTL (renews, then logs in again)', async () => {
  // The role as the docs write it, with a TTL a test can wait out.
  await store.admin.writeAppRole(APPROLE_MOUNT, POLICY_NAMES.bridge, {
    policies: [POLICY_NAMES.bridge],
    tokenTtl: '3s',
    tokenMaxTtl: '5s',
  });
  const secretId = await store.admin.createAppRoleSecretId(APPROLE_MOUNT, POLICY_NAMES.bridge);
  const port = await freePort();
  child = spawn(
    process.execPath,
    [
      builtCli(),
      'bridge',
      'run',
      '--secretstore-address',
      store.server.address,
      '--beacon',
      `127.0.0.1:${await freePort()}`,
      '--beacon-client-identity',
      'none',
      '--poll-interval',
      '300ms',
      '--metrics-listen',
      `127.0.0.1:${port}`,
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        CLOUDTASER_LOG_LEVEL: 'warn',
        CLOUDTASER_APPROLE_ROLE_ID: store.identities.bridgeRoleId,
        CLOUDTASER_APPROLE_SECRET_ID: secretId,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-8000);
  });
  const status = async () =>
    (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
      clusters: unknown[];
      lastPollError?: string;
      openbaoLogin?: { state: string; logins: number; renewals: number };
    };
  await vi.waitFor(async () => expect((await status()).clusters.length).toBe(1), { timeout: 15_000 });
  // Past the token's TTL: a cluster registered now must still be discovered.
  await new Promise((r) => setTimeout(r, 6_500));
  await store.register(randomUUID());
  await vi.waitFor(
    async () => {
      const s = await status();
      expect(s.lastPollError, stderr).toBeUndefined();
      expect(s.clusters.length).toBe(2);
    },
    { timeout: 5_000, interval: 300 },
  );
  const login = (await status()).openbaoLogin!;
  expect(login.state).toBe('ok');
  expect(login.renewals).toBeGreaterThanOrEqual(1);
  expect(login.logins).toBeGreaterThanOrEqual(2);
});
