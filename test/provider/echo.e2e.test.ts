import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProviderServerHandle, startProviderServer } from '../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../provider/wire/hclog.js';
import { createEchoProvider, type EchoStore } from './support/echo-provider.js';
import { createWorkspace, type TerraformWorkspace } from './support/terraform.js';

const config = (name: string, value: string) => `
terraform {
  required_providers {
    echo = { source = "registry.terraform.io/cloudtaser/echo" }
  }
}
provider "echo" {}
resource "echo_thing" "a" {
  name  = "${name}"
  value = "${value}"
}
data "echo_echo" "e" {
  input = echo_thing.a.upper
}
output "upper" { value = echo_thing.a.upper }
output "echo" { value = data.echo_echo.e.output }
`;

describe('framework against the real terraform binary (echo provider)', () => {
  const store: EchoStore = { things: new Map(), calls: [] };
  let server: ProviderServerHandle;
  let ws: TerraformWorkspace;

  beforeAll(async () => {
    server = await startProviderServer(createEchoProvider(store), { logger: silentProviderLogger });
    ws = createWorkspace({ env: server.reattachEnv });
  });
  afterAll(async () => {
    await server?.close();
    ws?.dispose();
  });

  it('creates, shows no change, updates in place, replaces, detects drift, imports and destroys', async () => {
    ws.write('main.tf', config('alpha', 'v1'));
    let r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('upper = "ALPHA"');
    expect(r.stdout).toContain('echo = "ALPHA"');
    expect(store.things.size).toBe(1);

    r = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(r.code, r.stdout + r.stderr).toBe(0);

    ws.write('main.tf', config('alpha', 'v2'));
    r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('1 changed');
    expect([...store.things.values()][0].value).toBe('v2');

    ws.write('main.tf', config('beta', 'v2'));
    r = await ws.run(['plan', '-no-color']);
    expect(r.stdout).toContain('forces replacement');
    r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('1 added, 0 changed, 1 destroyed');
    expect([...store.things.values()].map((t) => t.name)).toEqual(['beta']);

    store.things.clear();
    r = await ws.run(['plan', '-no-color']);
    expect(r.stdout).toContain('has been deleted');
    expect(r.stdout).toContain('1 to add');
    r = await ws.run(['apply', '-auto-approve', '-no-color']);
    expect(r.code, r.stderr).toBe(0);
    const [id] = [...store.things.keys()];

    r = await ws.run(['state', 'rm', 'echo_thing.a']);
    expect(r.code, r.stderr).toBe(0);
    r = await ws.run(['import', '-no-color', 'echo_thing.a', id]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    r = await ws.run(['plan', '-detailed-exitcode', '-no-color']);
    expect(r.code, r.stdout + r.stderr).toBe(0);

    r = await ws.run(['destroy', '-auto-approve', '-no-color']);
    expect(r.code, r.stderr).toBe(0);
    expect(store.things.size).toBe(0);
  });

  it('reports a validation error once, pointing at the attribute', async () => {
    ws.write('main.tf', config('has space', 'v1'));
    const r = await ws.run(['plan', '-no-color']);
    expect(r.code).toBe(1);
    expect(r.stderr.match(/Error:/g)).toHaveLength(1);
    expect(r.stderr).toContain('contains a space; use dashes');
    expect(r.stderr).toContain('on main.tf line');
  });

  it('sends a deprecated attribute with its deprecation_message, which terraform 1.11 accepts, and warns with the message when it is set', async () => {
    ws.write('main.tf', `${config('gamma', 'v1')}\nresource "echo_legacy" "l" {\n  old_label = "x"\n}\n`);
    const schema = await ws.run(['providers', 'schema', '-json']);
    expect(schema.code, schema.stderr).toBe(0);
    const attribute = JSON.parse(schema.stdout).provider_schemas['registry.terraform.io/cloudtaser/echo']
      .resource_schemas.echo_legacy.block.attributes.old_label;
    // 1.11 speaks protocol 6.8: it keeps the flag and skips the 6.10 message field without complaint.
    expect(attribute.deprecated).toBe(true);
    const plan = await ws.run(['plan', '-no-color']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    // The message itself reaches the user through the provider's validation warning, on every version.
    const text = (plan.stdout + plan.stderr).replace(/\s+/g, ' ');
    expect(text).toContain('Warning: Argument old_label is deprecated');
    expect(text).toContain('use tags instead; old_label is removed in echo 1.0');
    expect(text).toMatch(/on main\.tf line \d+, in resource "echo_legacy" "l"/);
  });
});
