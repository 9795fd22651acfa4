/**
 * readServiceAccountIssuer (runtime/kube), which feeds the data source's service_account_issuer/_jwks: the real
 * test server, and a hostile or broken API server answering the two discovery paths.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeTestServer, startKubeTestServer } from '../../runtime/dev/kube/index.js';
import { readServiceAccountIssuer } from '../../runtime/kube/index.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const dir = mkdtempSync(join(tmpdir(), 'ct-sa-issuer-'));
let kube: KubeTestServer;
let fake: Server;
let fakeKubeconfig: string;
let handler: Handler = (_req, res) => res.end();

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};
const serving = (discovery: unknown, jwks: unknown, status = 200): Handler => {
  return (req, res) => {
    if (req.url === '/.well-known/openid-configuration') json(res, status, discovery);
    else if (req.url === '/openid/v1/jwks') json(res, status, jwks);
    else json(res, 404, { kind: 'Status', message: 'not found' });
  };
};
const ecKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicJwk = (kid: string) => ({
  kid,
  alg: 'ES256',
  use: 'sig',
  ...ecKey().publicKey.export({ format: 'jwk' }),
});
const readFake = (timeoutMs?: number) =>
  readServiceAccountIssuer({ kind: 'kubeconfig', path: fakeKubeconfig }, { timeoutMs });

beforeAll(async () => {
  kube = await startKubeTestServer();
  fake = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  const port = (fake.address() as { port: number }).port;
  fakeKubeconfig = join(dir, 'fake.kubeconfig');
  writeFileSync(
    fakeKubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: test-token } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`,
  );
});

afterAll(async () => {
  await kube?.close();
  fake?.closeAllConnections();
  await new Promise((resolve) => fake?.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('readServiceAccountIssuer', () => {
  it("returns the test cluster's issuer and the key that verifies its service-account tokens", async () => {
    const kubeconfig = join(dir, 'kube.kubeconfig');
    await kube.writeKubeconfig(kubeconfig);
    const found = await readServiceAccountIssuer({ kind: 'kubeconfig', path: kubeconfig });
    expect(found.issuer).toBe(kube.issuer);
    expect(found.jwks.keys).toHaveLength(1);
    expect(found.jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256' });
  });

  it('keeps only public RSA/EC keys: private parameters and symmetric keys never come back', async () => {
    const privateJwk = { kid: 'leaked', ...ecKey().privateKey.export({ format: 'jwk' }) };
    handler = serving(
      { issuer: 'https://issuer.example' },
      {
        keys: [privateJwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }, publicJwk('good')],
      },
    );
    const found = await readFake();
    expect(found.jwks.keys.map((k) => k.kid)).toEqual(['good']);
    expect(JSON.stringify(found)).not.toContain('"d"');
  });

  it('says the issuer is not a URL when the API server does not serve discovery (404)', async () => {
    handler = serving(
      { kind: 'Status', message: 'the server could not find the requested resource' },
      {},
      404,
    );
    await expect(readFake()).rejects.toMatchObject({
      code: 'CT_KUBE_NOT_FOUND',
      message: expect.stringContaining('--service-account-issuer'),
    });
  });

  it('names the ClusterRole to grant when the credentials may not read discovery (403)', async () => {
    handler = serving({ kind: 'Status', reason: 'Forbidden', message: 'forbidden' }, {}, 403);
    await expect(readFake()).rejects.toMatchObject({
      code: 'CT_KUBE_FORBIDDEN',
      message: expect.stringContaining('system:service-account-issuer-discovery'),
    });
  });

  it.each([
    ['no issuer', {}],
    ['an issuer that is not a string', { issuer: 42 }],
    ['an issuer with spaces', { issuer: 'https://a b' }],
    ['an oversized issuer', { issuer: `https://${'a'.repeat(2000)}` }],
    ['a body that is not JSON', 'not json at all'],
  ])('refuses a discovery document with %s (CT_KUBE_ERROR)', async (_what, discovery) => {
    handler = serving(discovery, { keys: [publicJwk('k')] });
    await expect(readFake()).rejects.toMatchObject({ code: 'CT_KUBE_ERROR' });
  });

  it.each([
    ['no keys array', { nokeys: true }],
    ['an empty key list', { keys: [] }],
    ['more than 32 keys', { keys: Array.from({ length: 33 }, (_, i) => publicJwk(`k${i}`)) }],
    ['garbage keys', { keys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }, 'x', null] }],
  ])('refuses a JWKS with %s, naming the server', async (_what, jwks) => {
    handler = serving({ issuer: 'https://issuer.example' }, jwks);
    const err = await readFake().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CT_KUBE_ERROR', message: expect.stringContaining('/openid/v1/jwks') });
  });

  it('gives up on a server that never answers, with CT_KUBE_UNREACHABLE', async () => {
    handler = () => {
      // never answers
    };
    await expect(readFake(200)).rejects.toMatchObject({ code: 'CT_KUBE_UNREACHABLE' });
  });
});
