import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cloudtaserSchemas } from '../../provider/cloudtaser.js';
import { generateProviderDocs } from '../../provider/docs/generate.js';
import type { Block } from '../../provider/schema/schema.js';

const DOCS = join(import.meta.dirname, '..', '..', 'docs');

describe('registry docs generated from the schema', () => {
  it('docs/ matches the schema (run `node dist/provider/docs/generate.js docs` after a schema change)', () => {
    const generated = generateProviderDocs();
    expect(Object.keys(generated).sort()).toEqual([
      'data-sources/cluster_fingerprint.md',
      'index.md',
      'resources/beacon_client_ca.md',
      'resources/cluster_registration.md',
    ]);
    for (const [path, content] of Object.entries(generated)) {
      let committed = '';
      try {
        committed = readFileSync(join(DOCS, path), 'utf8');
      } catch {
        // missing file: reported by the assertion below
      }
      expect(committed, `docs/${path} is stale or missing`).toBe(content);
    }
  });

  it('documents every attribute of every schema, each with a description', () => {
    const docs = generateProviderDocs();
    const check = (block: Block, page: string) => {
      for (const [name, a] of Object.entries(block.attributes)) {
        expect(a.description.trim().length, name).toBeGreaterThan(10);
        expect(docs[page]).toContain(`\`${name}\``);
      }
      for (const nested of Object.values(block.blocks ?? {})) check(nested.block, page);
    };
    check(cloudtaserSchemas.provider.block, 'index.md');
    check(
      cloudtaserSchemas.resources.cloudtaser_cluster_registration.block,
      'resources/cluster_registration.md',
    );
    check(
      cloudtaserSchemas.dataSources.cloudtaser_cluster_fingerprint.block,
      'data-sources/cluster_fingerprint.md',
    );
  });
});
