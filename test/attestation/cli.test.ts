import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServiceAccount } from '../../runtime/broker/command.js';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { runCli } from '../cli/run-cli.js';

describe('cloudtaser-cli source register with attestation flags', () => {
  let openbao: OpenBaoTestServer;
  let kube: KubeTestServer;
  let dir: string;
  let jwksFile: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    openbao = await startOpenBaoTestServer();
    kube = await startKubeTestServer();
    dir = await mkdtemp(join(tmpdir(), 'cloudtaser-attestation-'));
    const response = await undiciFetch(`${kube.url}/openid/v1/jwks`, {
      headers: { authorization: `Bearer ${kube.adminToken}` },
      dispatcher: new Agent({ connect: { ca: kube.caCertPem } }),
    });
    jwksFile = join(dir, 'jwks.json');
    await writeFile(jwksFile, await response.text());
    env = { CLOUDTASER_SECRETSTORE_TOKEN: openbao.rootToken };
  });
  afterAll(async () => {
    await openbao?.close();
    await kube?.close();
  });

  const base = (fp: string) => ['--fingerprint', fp, '--secretstore-address', openbao.address];

  it('stores the issuer, keys and service account, shows them in status, and keeps them on a plain re-run', async () => {
    const fp = randomUUID();
    const registered = await runCli(
      [
        'source',
        'register',
        ...base(fp),
        '--attestation-issuer',
        kube.issuer,
        '--attestation-jwks',
        jwksFile,
        '--attestation-service-account',
        'ops/operator',
        '--output',
        'json',
      ],
      env,
    );
    expect(registered.code, registered.stderr).toBe(0);
    expect(JSON.parse(registered.stdout)).toMatchObject({ attested: true, changed: true });

    const plain = await runCli(['source', 'register', ...base(fp), '--output', 'json'], env);
    expect(JSON.parse(plain.stdout)).toMatchObject({ attested: true, changed: false });

    const status = await runCli(['source', 'status', ...base(fp)], env);
    expect(status.stdout).toContain(`Attested:    yes (issuer ${kube.issuer}`);
    expect(status.stdout).toContain('service account ops/operator');
  });

  it('refuses half the flags, an unreadable or invalid JWKS file and a bad service account before writing anything', async () => {
    const fp = randomUUID();
    const badJwks = join(dir, 'bad.json');
    await writeFile(badJwks, '{"keys":[]}');
    const cases: Array<[string[], string]> = [
      [['--attestation-issuer', kube.issuer], 'go together'],
      [['--attestation-jwks', jwksFile], 'go together'],
      [
        ['--attestation-issuer', kube.issuer, '--attestation-jwks', join(dir, 'missing.json')],
        'could not be read',
      ],
      [['--attestation-issuer', kube.issuer, '--attestation-jwks', badJwks], '/openid/v1/jwks'],
      [
        [
          '--attestation-issuer',
          kube.issuer,
          '--attestation-jwks',
          jwksFile,
          '--attestation-service-account',
          'nobody',
        ],
        '<namespace>/<name>',
      ],
    ];
    for (const [flags, message] of cases) {
      const result = await runCli(['source', 'register', ...base(fp), ...flags], env);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('CT_INVALID_ARGUMENT');
      expect(result.stderr).toContain(message);
    }
    const status = await runCli(['source', 'status', ...base(fp), '--output', 'json'], env);
    expect(JSON.parse(status.stdout).registered).toBe(false);
  });
});

describe('broker run --service-account', () => {
  it('parses ns/name, defaults to the downward-API environment, then to the chart default, and refuses junk', () => {
    expect(parseServiceAccount('ops/operator', {})).toEqual({ namespace: 'ops', name: 'operator' });
    expect(parseServiceAccount(undefined, { POD_NAMESPACE: 'team-a', SERVICE_ACCOUNT_NAME: 'op' })).toEqual({
      namespace: 'team-a',
      name: 'op',
    });
    expect(parseServiceAccount(undefined, {})).toEqual({
      namespace: 'cloudtaser-system',
      name: 'cloudtaser',
    });
    for (const junk of ['', 'operator', '/x', 'ns/', 'NS/x', 'a/b/c', 'ns/x y', `ns/${'a'.repeat(300)}`])
      expect(() => parseServiceAccount(junk, {})).toThrowError(
        expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }),
      );
  });
});
