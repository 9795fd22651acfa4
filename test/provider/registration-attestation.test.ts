/**
 * cloudtaser_cluster_registration's attestation attributes without terraform: plan-time validation of the
 * settings (and of the JWKS itself) and what the plan shows for attested / attestation_service_account.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { decodeMsgpack, encodeMsgpack } from '../../provider/cty/msgpack.js';
import { Unknown, unknown } from '../../provider/cty/values.js';
import { createProviderHandlers } from '../../provider/framework/provider.js';
import {
  clusterRegistrationBlock,
  DEFAULT_ATTESTATION_SERVICE_ACCOUNT,
} from '../../provider/resources/cluster-registration.js';
import { impliedType } from '../../provider/schema/schema.js';
import { DEFAULT_OPERATOR_SERVICE_ACCOUNT } from '../../runtime/registration/index.js';

const FP = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const type = impliedType(clusterRegistrationBlock);
const handlers = createProviderHandlers(createCloudtaserProvider({ env: {} }));
const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
const JWKS = JSON.stringify({ keys: [{ kid: 'k1', alg: 'ES256', use: 'sig', ...jwk }] });
const ISSUER = 'https://kubernetes.default.svc.cluster.local';

const empty = Object.fromEntries(Object.keys(clusterRegistrationBlock.attributes).map((k) => [k, null]));
const value = (v: Record<string, unknown>) => ({ msgpack: encodeMsgpack({ ...empty, ...v } as never, type) });

type WireDiagnostic = {
  severity: number;
  summary: string;
  detail: string;
  attribute?: { steps: { attributeName: string }[] };
};
const validate = async (config: Record<string, unknown>) =>
  (
    await handlers.ValidateResourceConfig!({
      typeName: 'cloudtaser_cluster_registration',
      config: value({ fingerprint: FP, ...config }),
    })
  ).diagnostics as WireDiagnostic[];
const attributeOf = (d: WireDiagnostic) => d.attribute?.steps[0].attributeName;

async function plan(config: Record<string, unknown>, prior: Record<string, unknown> | null) {
  const full = { fingerprint: FP, ...config };
  // Terraform's proposal: config values, with computed attributes the config leaves unset taken from prior.
  const proposed: Record<string, unknown> = { ...empty, ...(prior ?? {}), ...full };
  for (const [name, a] of Object.entries(clusterRegistrationBlock.attributes)) {
    if (!a.computed && !(name in full)) proposed[name] = null;
    if (a.computed && (full as Record<string, unknown>)[name] === undefined)
      proposed[name] = prior?.[name] ?? null;
  }
  const response = (await handlers.PlanResourceChange!({
    typeName: 'cloudtaser_cluster_registration',
    priorState: prior === null ? { msgpack: encodeMsgpack(null, type) } : value(prior),
    proposedNewState: value(proposed),
    config: value(full),
  })) as { plannedState?: { msgpack: Uint8Array }; diagnostics: WireDiagnostic[] };
  expect(response.diagnostics).toEqual([]);
  return decodeMsgpack(response.plannedState!.msgpack, type) as Record<string, unknown>;
}

describe('cloudtaser_cluster_registration attestation settings', () => {
  it('uses the runtime default service account', () => {
    const { namespace, name } = DEFAULT_OPERATOR_SERVICE_ACCOUNT;
    expect(DEFAULT_ATTESTATION_SERVICE_ACCOUNT).toBe(`${namespace}/${name}`);
  });

  it('accepts issuer and keys together, with or without a service account, and values unknown at plan time', async () => {
    expect(await validate({ attestation_issuer: ISSUER, attestation_jwks: JWKS })).toEqual([]);
    expect(
      await validate({
        attestation_issuer: ISSUER,
        attestation_jwks: JWKS,
        attestation_service_account: 'ops/op',
      }),
    ).toEqual([]);
    expect(await validate({ attestation_issuer: unknown, attestation_jwks: unknown })).toEqual([]);
    expect(await validate({ attestation_issuer: ISSUER, attestation_jwks: unknown })).toEqual([]);
  });

  it('refuses half of the settings, naming the missing attribute', async () => {
    const noKeys = await validate({ attestation_issuer: ISSUER });
    expect(noKeys).toHaveLength(1);
    expect(attributeOf(noKeys[0])).toBe('attestation_jwks');
    expect(noKeys[0].detail).toContain('go together');
    expect(attributeOf((await validate({ attestation_jwks: JWKS }))[0])).toBe('attestation_issuer');
    const lonelyAccount = await validate({ attestation_service_account: 'ops/op' });
    expect(attributeOf(lonelyAccount[0])).toBe('attestation_service_account');
  });

  it.each([
    ['not JSON', 'keys: none'],
    ['no keys', '{"keys":[]}'],
    ['only a symmetric key', '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}'],
    ['a broken EC key', '{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}'],
    ['too many keys', JSON.stringify({ keys: Array.from({ length: 33 }, () => JSON.parse(JWKS).keys[0]) })],
  ])('refuses at plan time a JWKS with %s, on attestation_jwks', async (_what, jwks) => {
    const problems = await validate({ attestation_issuer: ISSUER, attestation_jwks: jwks });
    expect(problems).toHaveLength(1);
    expect(problems[0].summary).toBe('Invalid value for attestation_jwks (CT_INVALID_ARGUMENT)');
    expect(attributeOf(problems[0])).toBe('attestation_jwks');
  });

  it.each([
    ['attestation_service_account', 'cloudtaser'],
    ['attestation_service_account', 'Ops/op'],
    ['attestation_service_account', 'a/b/c'],
    ['attestation_issuer', 'https://a b'],
    ['attestation_issuer', `https://${'a'.repeat(1100)}`],
  ])('refuses %s = %j', async (attribute, bad) => {
    const problems = await validate({ attestation_issuer: ISSUER, attestation_jwks: JWKS, [attribute]: bad });
    expect(problems.map(attributeOf)).toContain(attribute);
  });

  it('plans attested and the default service account for a new attested registration', async () => {
    const planned = await plan({ attestation_issuer: ISSUER, attestation_jwks: JWKS }, null);
    expect(planned.attested).toBe(true);
    expect(planned.attestation_service_account).toBe(DEFAULT_ATTESTATION_SERVICE_ACCOUNT);
    expect(planned.attestation_jwks).toBe(JWKS);
  });

  it('plans a new registration without settings as not attested, with nothing "known after apply"', async () => {
    const planned = await plan({}, null);
    expect(planned.attested).toBe(false);
    expect(planned.attestation_issuer).toBeNull();
    expect(planned.attestation_jwks).toBeNull();
    expect(planned.attestation_service_account).toBeNull();
  });

  it('leaves attested unknown while the issuer is unknown (the data source is read during apply)', async () => {
    const planned = await plan({ attestation_issuer: unknown, attestation_jwks: unknown }, null);
    expect(planned.attested).toBeInstanceOf(Unknown);
  });

  it('keeps the stored settings when an existing registration drops them from its configuration', async () => {
    const prior = {
      ...empty,
      fingerprint: FP,
      id: FP,
      attestation_issuer: ISSUER,
      attestation_jwks: JWKS,
      attestation_service_account: DEFAULT_ATTESTATION_SERVICE_ACCOUNT,
      attested: true,
      purge_on_destroy: false,
    };
    const planned = await plan({ purge_on_destroy: true }, prior);
    expect(planned.attestation_issuer).toBe(ISSUER);
    expect(planned.attestation_jwks).toBe(JWKS);
    expect(planned.attested).toBe(true);
  });
});
