/**
 * Generates the Terraform-registry documentation (docs/index.md, docs/resources/*.md,
 * docs/data-sources/*.md, docs/functions/*.md) from the schema and function declarations, so the docs can
 * never drift from the code.
 * `node dist/provider/docs/generate.js [DIR]` rewrites them; a test fails when the committed copy is stale.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cloudtaserSchemas, PROVIDER_SOURCE, PROVIDER_VERSION } from '../cloudtaser.js';
import type { CtyType } from '../cty/types.js';
import type { FunctionDefinition } from '../framework/functions.js';
import type { Attribute, Block, Schema } from '../schema/schema.js';

const PROVIDER_NAME = 'cloudtaser';

const EXAMPLES = {
  provider: `terraform {
  required_providers {
    cloudtaser = {
      source  = "${PROVIDER_SOURCE}"
      version = "${PROVIDER_VERSION}"
    }
  }
}

# The token comes from CLOUDTASER_SECRETSTORE_TOKEN (or BAO_TOKEN / VAULT_TOKEN) in terraform's environment.
provider "cloudtaser" {
  secretstore_address = "https://openbao.example.eu:8200"
}`,
  cloudtaser_cluster_registration: `data "cloudtaser_cluster_fingerprint" "prod" {
  kubeconfig_path = pathexpand("~/.kube/config")
  context         = "prod-eu"
}

resource "cloudtaser_cluster_registration" "prod" {
  fingerprint = data.cloudtaser_cluster_fingerprint.prod.fingerprint

  # Attested bootstrap: the operator proves with a service-account token that it runs in this cluster.
  # After the cluster rotates its signing key, a plain apply updates the keys in place.
  attestation_issuer = data.cloudtaser_cluster_fingerprint.prod.service_account_issuer
  attestation_jwks   = data.cloudtaser_cluster_fingerprint.prod.service_account_jwks
}

output "init_hash" {
  value = cloudtaser_cluster_registration.prod.init_hash
}`,
  cloudtaser_beacon_client_ca: `resource "cloudtaser_beacon_client_ca" "this" {}

# The beacon admits as bridges only clients with a certificate from this CA (public; its key stays in OpenBao).
output "beacon_bridge_ca_pem" {
  value = cloudtaser_beacon_client_ca.this.ca_cert_pem
}`,
  cloudtaser_cluster_fingerprint: `# From a kubeconfig
data "cloudtaser_cluster_fingerprint" "from_kubeconfig" {
  kubeconfig_path = pathexpand("~/.kube/config")
  context         = "prod-eu"
}

# From a cluster created in the same configuration (read at apply time when the cluster is new)
data "cloudtaser_cluster_fingerprint" "gke" {
  host                   = "https://\${google_container_cluster.prod.endpoint}"
  token                  = data.google_client_config.current.access_token
  cluster_ca_certificate = base64decode(google_container_cluster.prod.master_auth[0].cluster_ca_certificate)
}

# Credentials in the provider's kubernetes block: provider configuration is never written to state, and from an
# ephemeral variable (Terraform >= 1.10) the token is not kept in a saved plan either.
variable "prod_token" {
  type      = string
  sensitive = true
  ephemeral = true
}

provider "cloudtaser" {
  alias = "prod"
  kubernetes {
    host                   = "https://203.0.113.10"
    token                  = var.prod_token
    cluster_ca_certificate = file("\${path.module}/prod-ca.pem")
  }
}

data "cloudtaser_cluster_fingerprint" "prod" {
  provider = cloudtaser.prod
}

# With a credential plugin
data "cloudtaser_cluster_fingerprint" "eks" {
  host                   = aws_eks_cluster.prod.endpoint
  cluster_ca_certificate = base64decode(aws_eks_cluster.prod.certificate_authority[0].data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", aws_eks_cluster.prod.name]
  }
}`,
} as const;

const OWNERSHIP_TEXT = `A registration has one owner. Creating \`cloudtaser_cluster_registration\` for a cluster that is
already registered in OpenBao (by \`cloudtaser-cli source register\` or another Terraform state) fails at plan time
(and again at apply) with \`CT_REGISTRATION_EXISTS\` and the \`terraform import\` command to run. To take such a
registration over without importing, set \`adopt_existing = true\`. If an apply was interrupted after the
registration was written but before Terraform saved its state, import it the same way.`;

const IMPORT_TEXTS: Record<string, string> = {
  cloudtaser_beacon_client_ca: `There is one beacon client CA per namespace root; import it with any id and Terraform reads it:

\`\`\`shell
terraform import cloudtaser_beacon_client_ca.this beacon-client-ca
\`\`\``,
};

const IMPORT_TEXT = `Import a registration by its fingerprint (the kube-system namespace UID):

\`\`\`shell
terraform import cloudtaser_cluster_registration.prod 0b6e3c4e-1f2a-4d5b-9c8d-7e6f5a4b3c2d
\`\`\`

or with an \`import\` block:

\`\`\`terraform
import {
  to = cloudtaser_cluster_registration.prod
  id = "0b6e3c4e-1f2a-4d5b-9c8d-7e6f5a4b3c2d"
}
\`\`\``;

const INDEX_EXTRA = `## Authentication

The provider needs an OpenBao token that may create namespaces and mounts under \`namespace_root\`. Pass it
through the environment (\`CLOUDTASER_SECRETSTORE_TOKEN\`, then \`BAO_TOKEN\`, then \`VAULT_TOKEN\`) rather than in
configuration. \`terraform plan\` fails when a registration is planned and no token (or no address) is set, so a
missing credential never surfaces only at apply. It also asks OpenBao (\`sys/capabilities-self\`, which every
token's \`default\` policy allows) whether the token holds what the change needs under \`namespace_root\`: a
registrar policy that is out of date or written for another root fails the plan with
\`CT_OPENBAO_PERMISSION_DENIED\`, naming the missing capabilities and the command that prints the current policy
(\`cloudtaser-cli source policy registrar\`). A replacement deregisters before it registers again, so this is
what keeps a \`namespace_root\` change from leaving the cluster unregistered.

## Arguments known only during apply

When \`secretstore_address\` (or another argument) is computed from a resource created in the same run, the plan
cannot reach OpenBao: registrations already in state are shown as stored, with a warning, and values that
depend on the missing arguments are \`(known after apply)\`. Terraform configures the provider with the final
values during apply. Run \`terraform plan\` again after that apply to compare the state with OpenBao.

## State

No token, private key or Kubernetes credential is written to state: the registration keeps the cluster CA
certificate (public) and hashes, and \`cloudtaser_cluster_fingerprint\` returns null for \`token\` and the
\`exec\` block's \`args\` and \`env\`. Credentials given in the provider block (\`secretstore_token\`, the
\`kubernetes\` block) never reach the state, and from an ephemeral variable or resource (Terraform >= 1.10) not a
saved plan file either (a plain variable's value is kept in a saved plan). The state still tells which clusters are
registered where: keep it in a backend with access control and encryption, or, for a local
\`terraform.tfstate\` (which Terraform writes with the process umask, typically \`0644\`), run Terraform with
\`umask 077\`.

## OpenTofu

The provider works with OpenTofu (>= 1.7 for the functions). OpenTofu reads \`source = "${PROVIDER_SOURCE}"\` as
\`registry.opentofu.org/${PROVIDER_SOURCE}\`; \`cloudtaser-cli provider install --mirror DIR\` installs the same
package under both \`registry.terraform.io\` and \`registry.opentofu.org\`, and prints one
\`provider_installation\` block for both tools (put it in \`~/.tofurc\`, or the file \`TF_CLI_CONFIG_FILE\` names).
Keep \`source = "${PROVIDER_SOURCE}"\` in configurations shared by both tools; the lock file of each tool records
its own address with the same \`h1:\` hash.

## Functions

Pure functions, usable in any expression before anything is applied (Terraform >= 1.8, OpenTofu >= 1.7):
${cloudtaserSchemas.functions.map((fn) => `- [\`provider::cloudtaser::${fn.name}\`](functions/${fn.name}.md): ${fn.summary}`).join('\n')}

## Requirements

The provider is a Node.js program: Node.js >= 20.18 must be on the \`PATH\` that \`terraform\` (or \`tofu\`) runs with.
Install it into a filesystem mirror with \`cloudtaser-cli provider install --mirror DIR\`.`;

/** Relative path (under docs/) -> markdown. */
export function generateProviderDocs(): Record<string, string> {
  const out: Record<string, string> = {};
  out['index.md'] = page({
    title: 'Provider: cloudtaser',
    frontTitle: `${PROVIDER_NAME} Provider`,
    schema: cloudtaserSchemas.provider,
    example: EXAMPLES.provider,
    extra: INDEX_EXTRA,
  });
  for (const fn of cloudtaserSchemas.functions) out[`functions/${fn.name}.md`] = functionPage(fn);
  for (const [type, schema] of Object.entries(cloudtaserSchemas.resources)) {
    out[`resources/${type.replace(`${PROVIDER_NAME}_`, '')}.md`] = page({
      title: `${type} (Resource)`,
      frontTitle: `${type} Resource - terraform-provider-${PROVIDER_NAME}`,
      schema,
      example: EXAMPLES[type as keyof typeof EXAMPLES],
      extra:
        type === 'cloudtaser_cluster_registration'
          ? `## Existing registrations\n\n${OWNERSHIP_TEXT}\n\n## Import\n\n${IMPORT_TEXT}`
          : `## Import\n\n${IMPORT_TEXTS[type] ?? IMPORT_TEXT}`,
    });
  }
  for (const [type, schema] of Object.entries(cloudtaserSchemas.dataSources)) {
    out[`data-sources/${type.replace(`${PROVIDER_NAME}_`, '')}.md`] = page({
      title: `${type} (Data Source)`,
      frontTitle: `${type} Data Source - terraform-provider-${PROVIDER_NAME}`,
      schema,
      example: EXAMPLES[type as keyof typeof EXAMPLES],
    });
  }
  return out;
}

export function writeProviderDocs(dir: string): string[] {
  const written: string[] = [];
  for (const [path, content] of Object.entries(generateProviderDocs())) {
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, content);
    written.push(target);
  }
  return written;
}

function page(options: {
  title: string;
  frontTitle: string;
  schema: Schema;
  example?: string;
  extra?: string;
}): string {
  const description = options.schema.block.description;
  const lines = [
    '---',
    `page_title: ${JSON.stringify(options.frontTitle)}`,
    'subcategory: ""',
    'description: |-',
    ...wrap(description).map((l) => `  ${l}`),
    '---',
    '',
    `# ${options.title}`,
    '',
    description,
    '',
    '<!-- Generated from the schema by provider/docs/generate.ts; edit the schema, not this file. -->',
    '',
  ];
  if (options.schema.block.deprecated)
    lines.push(`~> **Deprecated**: ${options.schema.block.deprecated}`, '');
  if (options.example) lines.push('## Example Usage', '', '```terraform', options.example, '```', '');
  lines.push('## Schema', '', ...blockSection(options.schema.block, ''));
  if (options.extra) lines.push(options.extra, '');
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

function functionPage(fn: FunctionDefinition): string {
  const parameters = [...fn.parameters, ...(fn.variadic ? [fn.variadic] : [])];
  const signature = `${fn.name}(${[
    ...fn.parameters.map((p) => `${p.name} ${typeLabel(p.type).toLowerCase()}`),
    ...(fn.variadic ? [`${fn.variadic.name} ...${typeLabel(fn.variadic.type).toLowerCase()}`] : []),
  ].join(', ')}) ${typeLabel(fn.returns).toLowerCase()}`;
  const lines = [
    '---',
    `page_title: ${JSON.stringify(`${fn.name} function - terraform-provider-${PROVIDER_NAME}`)}`,
    'subcategory: ""',
    'description: |-',
    ...wrap(fn.summary).map((l) => `  ${l}`),
    '---',
    '',
    `# function: ${fn.name}`,
    '',
    fn.description,
    '',
    '<!-- Generated from the function declaration by provider/docs/generate.ts; edit provider/resources/functions.ts, not this file. -->',
    '',
  ];
  if (fn.deprecated) lines.push(`~> **Deprecated**: ${fn.deprecated}`, '');
  if (fn.examples?.length) {
    lines.push('## Example Usage', '', '```terraform');
    fn.examples.forEach((example, n) => {
      lines.push(
        `output "example_${n + 1}" {`,
        `  value = ${example.expression} # ${example.result}`,
        '}',
        '',
      );
    });
    lines.pop();
    lines.push('```', '');
  }
  lines.push('## Signature', '', '```text', signature, '```', '', '## Arguments', '');
  parameters.forEach((p, i) => {
    const variadic = p === fn.variadic ? ', Variadic' : '';
    lines.push(`${i + 1}. \`${p.name}\` (${typeLabel(p.type)}${variadic}) ${p.description}`);
  });
  lines.push(
    '',
    '## Errors',
    '',
    'Invalid input fails the plan with Terraform\'s "Invalid function argument" error, which points at the call',
    'and names the parameter, followed by the reason and its error code, e.g.',
    '`Invalid value for "fingerprint" parameter: fingerprint "prod" is not a UUID; ... (CT_INVALID_FINGERPRINT)`.',
  );
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

function blockSection(block: Block, anchor: string): string[] {
  const attributes = Object.entries(block.attributes).sort(([a], [b]) => a.localeCompare(b));
  const nestedBlocks = Object.entries(block.blocks ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const groups: [string, (a: Attribute) => boolean][] = [
    ['Required', (a) => a.required === true],
    ['Optional', (a) => a.optional === true],
    ['Read-Only', (a) => a.computed === true && !a.optional],
  ];
  const out: string[] = [];
  for (const [heading, matches] of groups) {
    const rows = attributes.filter(([, a]) => matches(a));
    const blockRows = heading === 'Optional' ? nestedBlocks : [];
    if (rows.length === 0 && blockRows.length === 0) continue;
    out.push(`### ${heading}`, '');
    for (const [name, a] of rows) {
      const flags = `${a.sensitive ? ', Sensitive' : ''}${a.deprecated ? ', Deprecated' : ''}`;
      out.push(`- \`${name}\` (${typeLabel(a.type)}${flags}) ${attributeText(a)}`);
    }
    for (const [name, b] of blockRows) {
      out.push(
        `- \`${name}\` (Block${b.nesting === 'single' ? '' : ` ${b.nesting}`}) ${b.block.description} (see [below for nested schema](#nestedblock--${anchor}${name}))`,
      );
    }
    out.push('');
  }
  for (const [name, b] of nestedBlocks) {
    out.push(
      `<a id="nestedblock--${anchor}${name}"></a>`,
      `### Nested Schema for \`${anchor.replace(/--/g, '.')}${name}\``,
      '',
    );
    out.push(...blockSection(b.block, `${anchor}${name}--`));
  }
  return out;
}

function attributeText(a: Attribute): string {
  const notes: string[] = [a.description.trim()];
  if (a.deprecated) notes.unshift(`**Deprecated**: ${a.deprecated.trim()}`);
  if (a.forceNew) notes.push('Changing this replaces the resource.');
  return notes.join(' ');
}

function typeLabel(type: CtyType): string {
  if (typeof type === 'string') return type.charAt(0).toUpperCase() + type.slice(1);
  const [kind, inner] = type;
  if (kind === 'list' || kind === 'set' || kind === 'map') {
    return `${kind.charAt(0).toUpperCase()}${kind.slice(1)} of ${typeLabel(inner as CtyType)}`;
  }
  return kind === 'object' ? 'Object' : 'Tuple';
}

function wrap(text: string): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + word.length + 1 > 100) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = resolve(process.argv[2] ?? 'docs');
  for (const file of writeProviderDocs(dir)) process.stderr.write(`wrote ${file}\n`);
}
