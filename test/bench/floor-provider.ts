#!/usr/bin/env node
/**
 * The framework floor of `provider.apply`: a Terraform provider built exactly as terraform-provider-cloudtaser
 * is (same plugin process, gRPC server, AutoMTLS, framework, bundle layout, deferred evaluation after the
 * handshake) whose one resource, `cloudtaser_floor`, does no work: no OpenBao, no keys, no remote check at
 * plan time. An apply through it costs what Terraform's walk and the 4 starts of a Node provider cost, so the
 * apply of a registration minus this is the registration's own work.
 *
 * Bundled by provider.bench.ts with buildProviderBundle({ entry }) into a mirror of its own; not shipped.
 */
import { PROVIDER_ADDRESS, PROVIDER_VERSION } from '../../provider/identity.js';
import { runPluginProcess } from '../../provider/wire/plugin-process.js';

runPluginProcess({ address: PROVIDER_ADDRESS, version: PROVIDER_VERSION }, async (logger) => {
  const [{ createProviderHandlers, defineResource }, { attr }] = await Promise.all([
    import('../../provider/framework/provider.js'),
    import('../../provider/schema/schema.js'),
  ]);
  const floorResource = defineResource<undefined>()({
    typeName: 'cloudtaser_floor',
    schema: {
      version: 0,
      block: {
        description: 'A resource that stores its configuration and does nothing else (benchmark floor).',
        attributes: {
          id: attr.string({ description: 'Same as `fingerprint`.', computed: true }),
          fingerprint: attr.string({ description: 'Any string; stored as is.', required: true }),
        },
      },
    },
    async create({ planned }) {
      return { ...planned, id: planned.fingerprint };
    },
    async read({ state }) {
      return state;
    },
    async delete() {},
  });
  return createProviderHandlers(
    {
      address: PROVIDER_ADDRESS,
      version: PROVIDER_VERSION,
      schema: { version: 0, block: { description: 'Benchmark floor provider.', attributes: {} } },
      configure: () => undefined,
      resources: [floorResource],
      dataSources: [],
    },
    { logger },
  );
}).catch((err: unknown) => {
  process.stdout.write(`floor provider failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
