/**
 * Captures DynamicValue bytes from the real terraform binary into test/provider/fixtures/ (run with
 * CLOUDTASER_CAPTURE_FIXTURES=1). The provider's debug dump (CLOUDTASER_PROVIDER_DUMP_VALUES) does the
 * recording; the codec golden tests then decode exactly what Terraform sent.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProviderServer } from '../../provider/framework/serve-provider.js';
import { createHclogLogger } from '../../provider/wire/hclog.js';
import { createEchoProvider } from './support/echo-provider.js';
import { createWorkspace } from './support/terraform.js';

const CONFIG = `
terraform {
  required_providers {
    echo = { source = "registry.terraform.io/cloudtaser/echo" }
  }
}
provider "echo" {}
resource "echo_thing" "a" {
  name       = "alpha"
  value      = "v1"
  tags       = { env = "prod", "__proto__" = "x", "ünïcode" = "ñ" }
  count_hint = 1.5
}
resource "echo_thing" "b" {
  name       = "beta"
  value      = "pre-\${echo_thing.a.id}"
  count_hint = 12345678901234567890
}
resource "echo_thing" "c" {
  name       = "gamma"
  value      = echo_thing.a.id
  count_hint = 0.1
}
resource "echo_thing" "d" {
  name       = "delta"
  count_hint = -42
}
`;

describe.skipIf(process.env.CLOUDTASER_CAPTURE_FIXTURES !== '1')('fixture capture', () => {
  it('records the DynamicValues terraform plan sends', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createHclogLogger({
      level: 'info',
      write: (line) => {
        const parsed = JSON.parse(line);
        if (parsed.event === 'dynamic_value') lines.push(parsed);
      },
    });
    const server = await startProviderServer(createEchoProvider({ things: new Map(), calls: [] }), {
      logger,
      dumpValues: true,
    });
    const ws = createWorkspace({ env: server.reattachEnv });
    try {
      ws.write('main.tf', CONFIG);
      const r = await ws.run(['plan', '-no-color']);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await server.close();
      ws.dispose();
    }
    const fixtures = lines
      .filter((l) => l.rpc === 'PlanResourceChange' && typeof l.msgpack === 'string')
      .map((l) => ({ rpc: l.rpc, field: l.field, msgpack: l.msgpack }));
    writeFileSync(
      join(import.meta.dirname, 'fixtures', 'plan-create.json'),
      `${JSON.stringify({ terraform: '1.11.4', config: CONFIG, values: fixtures }, null, 2)}\n`,
    );
    expect(fixtures.length).toBeGreaterThan(0);
  });
});
