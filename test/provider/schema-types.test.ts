/**
 * The TypeScript view of a schema (InferValues). These assertions are checked by the compiler (`tsc --noEmit`
 * covers test/), so a regression fails the typecheck; vitest runs them too, where they only prove they compile.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { clusterRegistrationBlock } from '../../provider/resources/cluster-registration.js';
import { attr, type InferValues, nested } from '../../provider/schema/schema.js';

const block = {
  description: 'a thing',
  attributes: {
    name: attr.string({ description: 'the name', required: true }),
    size: attr.number({ description: 'the size', required: true }),
    tags: attr.stringList({ description: 'tags', optional: true }),
    note: attr.string({ description: 'a note', optional: true, computed: true, default: '' }),
    id: attr.string({ description: 'the id', computed: true }),
  },
  blocks: {
    limits: nested.single({
      description: 'limits',
      attributes: { max: attr.bool({ description: 'max', required: true }) },
    }),
  },
};
type Values = InferValues<typeof block>;

describe('InferValues', () => {
  it('gives a required attribute its value type without null', () => {
    expectTypeOf<Values['name']>().toEqualTypeOf<string>();
    expectTypeOf<Values['size']>().not.toBeNullable();
    expectTypeOf<InferValues<typeof clusterRegistrationBlock>['fingerprint']>().toEqualTypeOf<string>();
    // Inside a nested block too; the block itself may be absent.
    expectTypeOf<NonNullable<Values['limits']>['max']>().toEqualTypeOf<boolean>();
    expectTypeOf<Values['limits']>().toBeNullable();
    expect(block.attributes.name.required).toBe(true);
  });

  it('keeps optional and computed attributes nullable', () => {
    expectTypeOf<Values['tags']>().toEqualTypeOf<readonly string[] | null>();
    expectTypeOf<Values['note']>().toEqualTypeOf<string | null>();
    expectTypeOf<Values['id']>().toEqualTypeOf<string | null>();
    expectTypeOf<InferValues<typeof clusterRegistrationBlock>['attestation_issuer']>().toEqualTypeOf<
      string | null
    >();
    expect(block.attributes.id.required).toBeUndefined();
  });
});
