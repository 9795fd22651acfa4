/**
 * Generates the Terraform-registry documentation (docs/index.md, docs/resources/*.md,
 * docs/data-sources/*.md) from the schema declarations, so the docs can never drift from the code.
 * `node dist/provider/docs/generate.js [DIR]` rewrites them; a test fails when the committed copy is stale.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cloudtaserSchemas, PROVIDER_ADDRESS } from '../cloudtaser.js';
import type { CtyType } from '../cty/types.js';
import type { Attribute, Block, Schema } from '../schema/schema.js';

const PROVIDER_NAME = 'cloudtaser';

const EXAMPLES = {
  provider: `terraform {
  required_providers {
    cloudtaser = {
      source  = "${PROVIDER_ADDRESS.replace('registry.terraform.io/', '')}"
      version = "0.1.0"
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

/** Relative path (under docs/) -> markdown. */
export function generateProviderDocs(): Record<string, string> {
  const out: Record<string, string> = {};
  out['index.md'] = page({
    title: 'Provider: cloudtaser',
    frontTitle: `${PROVIDER_NAME} Provider`,
    schema: cloudtaserSchemas.provider,
    example: EXAMPLES.provider,
    extra:
      '## Authentication\n\nThe provider needs an OpenBao token that may create namespaces and mounts under ' +
      '`namespace_root`. Pass it through the environment (`CLOUDTASER_SECRETSTORE_TOKEN`, then `BAO_TOKEN`, then ' +
      '`VAULT_TOKEN`) rather than in configuration. Tokens and keys never reach Terraform state.\n\n' +
      '## Requirements\n\nThe provider is a Node.js program: Node.js >= 20 must be on the `PATH` that `terraform` runs with. ' +
      'Install it into a filesystem mirror with `cloudtaser-cli provider install --mirror DIR`.',
  });
  for (const [type, schema] of Object.entries(cloudtaserSchemas.resources)) {
    out[`resources/${type.replace(`${PROVIDER_NAME}_`, '')}.md`] = page({
      title: `${type} (Resource)`,
      frontTitle: `${type} Resource - terraform-provider-${PROVIDER_NAME}`,
      schema,
      example: EXAMPLES[type as keyof typeof EXAMPLES],
      extra: `## Import\n\n${IMPORT_TEXTS[type] ?? IMPORT_TEXT}`,
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
  if (options.example) lines.push('## Example Usage', '', '```terraform', options.example, '```', '');
  lines.push('## Schema', '', ...blockSection(options.schema.block, ''));
  if (options.extra) lines.push(options.extra, '');
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
    for (const [name, a] of rows)
      out.push(`- \`${name}\` (${typeLabel(a.type)}${a.sensitive ? ', Sensitive' : ''}) ${attributeText(a)}`);
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
