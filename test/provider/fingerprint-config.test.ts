import { describe, expect, it } from 'vitest';
import { createCloudtaserProvider } from '../../provider/cloudtaser.js';
import { encodeMsgpack } from '../../provider/cty/msgpack.js';
import { unknown } from '../../provider/cty/values.js';
import { createProviderHandlers } from '../../provider/framework/provider.js';
import { clusterFingerprintBlock, toKubeConnection } from '../../provider/resources/cluster-fingerprint.js';
import { providerBlock } from '../../provider/resources/provider-config.js';
import { impliedType } from '../../provider/schema/schema.js';

const base = {
  kubeconfig_path: null,
  context: null,
  host: null,
  token: null,
  cluster_ca_certificate: null,
  fingerprint: null,
  exec: null,
};
const type = impliedType(clusterFingerprintBlock);
const handlers = createProviderHandlers(createCloudtaserProvider({ env: {} }));
const validate = async (config: Record<string, unknown>) =>
  (
    await handlers.ValidateDataResourceConfig!({
      typeName: 'cloudtaser_cluster_fingerprint',
      config: { msgpack: encodeMsgpack({ ...base, ...config } as never, type) },
    })
  ).diagnostics as { summary: string; detail: string; attribute?: { steps: { attributeName: string }[] } }[];

describe('cloudtaser_cluster_fingerprint configuration', () => {
  it('maps kubeconfig, token and exec settings to one connection kind', () => {
    expect(toKubeConnection({ ...base, kubeconfig_path: '/k', context: 'c' } as never)).toEqual({
      kind: 'kubeconfig',
      path: '/k',
      context: 'c',
      pathOrigin: 'kubeconfig_path',
    });
    expect(toKubeConnection({ ...base } as never)).toEqual({
      kind: 'kubeconfig',
      path: undefined,
      context: undefined,
    });
    expect(
      toKubeConnection({ ...base, host: 'https://h', token: 't', cluster_ca_certificate: 'PEM' } as never),
    ).toEqual({
      kind: 'token',
      host: 'https://h',
      token: 't',
      clusterCaCertificate: 'PEM',
    });
    expect(
      toKubeConnection({
        ...base,
        host: 'https://h',
        exec: {
          api_version: 'client.authentication.k8s.io/v1',
          command: 'aws',
          args: ['eks'],
          env: { A: 'b' },
        },
      } as never),
    ).toEqual({
      kind: 'exec',
      host: 'https://h',
      clusterCaCertificate: undefined,
      exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'aws', args: ['eks'], env: { A: 'b' } },
    });
  });

  it('accepts each single connection mode, and unknown values (read deferred to apply)', async () => {
    expect(await validate({})).toEqual([]);
    expect(await validate({ kubeconfig_path: '/k' })).toEqual([]);
    expect(await validate({ host: 'https://h', token: 't' })).toEqual([]);
    expect(await validate({ host: unknown, token: unknown })).toEqual([]);
    expect(
      await validate({ host: 'https://h', exec: { api_version: 'v', command: 'c', args: null, env: null } }),
    ).toEqual([]);
  });

  it('defers the combination check while module variables are still unknown', async () => {
    // An HCL module passes every connection input from variables; at validate time they are all unknown,
    // and those that end up null must not count as set.
    expect(
      await validate({ kubeconfig_path: unknown, host: unknown, token: unknown, exec: unknown }),
    ).toEqual([]);
  });

  it('refuses mixed or incomplete connection settings, naming the attribute', async () => {
    const mixed = await validate({ kubeconfig_path: '/k', host: 'https://h', token: 't' });
    expect(mixed[0].detail).toContain('either kubeconfig_path/context, or host');
    expect(mixed[0].attribute?.steps[0].attributeName).toBe('host');
    expect((await validate({ token: 't' }))[0].detail).toContain('need host');
    expect((await validate({ host: 'https://h' }))[0].detail).toContain('needs a token or an exec block');
    expect((await validate({ host: 'ftp://h', token: 't' }))[0].summary).toBe(
      'Invalid value for host (CT_INVALID_ARGUMENT)',
    );
  });

  it('names kubeconfig_path, not a CLI flag, when that file does not exist', async () => {
    const nulls = Object.fromEntries(
      [...Object.keys(providerBlock.attributes), ...Object.keys(providerBlock.blocks ?? {})].map((k) => [
        k,
        null,
      ]),
    );
    const configure = await handlers.ConfigureProvider!({
      config: { msgpack: encodeMsgpack(nulls as never, impliedType(providerBlock)) },
    });
    expect(configure.diagnostics).toEqual([]);
    const response = await handlers.ReadDataSource!({
      typeName: 'cloudtaser_cluster_fingerprint',
      config: { msgpack: encodeMsgpack({ ...base, kubeconfig_path: '/no/such/kubeconfig' } as never, type) },
    });
    const [diagnostic] = response.diagnostics as {
      detail: string;
      attribute?: { steps: { attributeName: string }[] };
    }[];
    expect(diagnostic.detail).toContain('/no/such/kubeconfig does not exist');
    expect(diagnostic.detail).toContain('kubeconfig_path');
    expect(diagnostic.detail).not.toContain('--kubeconfig');
    expect(diagnostic.attribute?.steps[0].attributeName).toBe('kubeconfig_path');
  });
});
