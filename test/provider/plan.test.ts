import { describe, expect, it } from 'vitest';
import { Unknown, unknown } from '../../provider/cty/values.js';
import { planChange } from '../../provider/framework/plan.js';
import { attr, type Block } from '../../provider/schema/schema.js';

const block: Block = {
  description: 'test',
  attributes: {
    id: attr.string({ description: 'id', computed: true }),
    name: attr.string({ description: 'name', required: true, forceNew: true }),
    value: attr.string({ description: 'value', optional: true }),
    purge: attr.bool({ description: 'purge', optional: true, computed: true, default: false }),
    hash: attr.string({ description: 'hash', computed: true }),
  },
};

const obj = (v: Record<string, unknown>) =>
  ({ id: null, name: null, value: null, purge: null, hash: null, ...v }) as never;

describe('generic plan algorithm', () => {
  const prior = obj({ id: 'i-1', name: 'a', value: 'v', purge: false, hash: 'h' });

  const table: {
    name: string;
    prior: unknown;
    proposed: unknown;
    config: unknown;
    action: string;
    replace: string[][];
    expect: Record<string, unknown>;
  }[] = [
    {
      name: 'create: computed attributes become unknown, defaults apply',
      prior: null,
      proposed: obj({ name: 'a', value: 'v' }),
      config: obj({ name: 'a', value: 'v' }),
      action: 'create',
      replace: [],
      expect: { id: unknown, hash: unknown, purge: false, name: 'a' },
    },
    {
      name: 'create: a configured optional+computed value wins over the default',
      prior: null,
      proposed: obj({ name: 'a', purge: true }),
      config: obj({ name: 'a', purge: true }),
      action: 'create',
      replace: [],
      expect: { purge: true },
    },
    {
      name: 'no change: computed values stay known',
      prior,
      proposed: prior,
      config: obj({ name: 'a', value: 'v' }),
      action: 'none',
      replace: [],
      expect: { id: 'i-1', hash: 'h' },
    },
    {
      name: 'update in place keeps computed values known',
      prior,
      proposed: obj({ id: 'i-1', name: 'a', value: 'w', purge: false, hash: 'h' }),
      config: obj({ name: 'a', value: 'w' }),
      action: 'update',
      replace: [],
      expect: { id: 'i-1', hash: 'h', value: 'w' },
    },
    {
      name: 'removing an optional+computed value from config falls back to its default',
      prior: obj({ id: 'i-1', name: 'a', value: 'v', purge: true, hash: 'h' }),
      proposed: obj({ id: 'i-1', name: 'a', value: 'v', purge: true, hash: 'h' }),
      config: obj({ name: 'a', value: 'v' }),
      action: 'update',
      replace: [],
      expect: { purge: false },
    },
    {
      name: 'changing a force-new attribute requires replacement and unknowns the computed values',
      prior,
      proposed: obj({ id: 'i-1', name: 'b', value: 'v', purge: false, hash: 'h' }),
      config: obj({ name: 'b', value: 'v' }),
      action: 'replace',
      replace: [['name']],
      expect: { id: unknown, hash: unknown, purge: false, name: 'b' },
    },
    {
      name: 'an unknown force-new value requires replacement too',
      prior,
      proposed: obj({ id: 'i-1', name: unknown, value: 'v', purge: false, hash: 'h' }),
      config: obj({ name: unknown, value: 'v' }),
      action: 'replace',
      replace: [['name']],
      expect: { id: unknown },
    },
    {
      name: 'destroy plans null',
      prior,
      proposed: null,
      config: null,
      action: 'delete',
      replace: [],
      expect: {},
    },
  ];

  for (const row of table) {
    it(row.name, () => {
      const result = planChange(block, {
        prior: row.prior as never,
        proposed: row.proposed as never,
        config: row.config as never,
      });
      expect(result.action).toBe(row.action);
      expect(result.requiresReplace).toEqual(row.replace);
      if (row.action === 'delete') expect(result.planned).toBeNull();
      for (const [key, value] of Object.entries(row.expect)) {
        const planned = (result.planned as Record<string, unknown>)[key];
        if (value instanceof Unknown) expect(planned).toBeInstanceOf(Unknown);
        else expect(planned).toEqual(value);
      }
    });
  }

  it('does not mutate the proposed value it was given', () => {
    const proposed = obj({ name: 'a' });
    planChange(block, { prior: null, proposed, config: proposed });
    expect((proposed as Record<string, unknown>).id).toBeNull();
  });

  it('replaces an unchanged object for the paths the resource names, and no paths twice', () => {
    const unchanged = obj({ id: 'i-1', name: 'a', value: 'v', purge: false, hash: 'h' });
    const result = planChange(block, {
      prior,
      proposed: unchanged,
      config: obj({ name: 'a', value: 'v' }),
      replaceFor: [['hash']],
    });
    expect(result.action).toBe('replace');
    expect(result.requiresReplace).toEqual([['hash']]);
    expect((result.planned as Record<string, unknown>).hash).toBeInstanceOf(Unknown);
    const renamed = planChange(block, {
      prior,
      proposed: obj({ id: 'i-1', name: 'b', value: 'v', purge: false, hash: 'h' }),
      config: obj({ name: 'b', value: 'v' }),
      replaceFor: [['name']],
    });
    expect(renamed.requiresReplace).toEqual([['name']]);
    // On create there is nothing to replace.
    expect(
      planChange(block, { prior: null, proposed: unchanged, config: unchanged, replaceFor: [['hash']] })
        .action,
    ).toBe('create');
  });
});
