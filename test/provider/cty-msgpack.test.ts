import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMsgpack, encodeMsgpack } from '../../provider/cty/msgpack.js';
import type { CtyType } from '../../provider/cty/types.js';
import { BigNumber, Dynamic, Unknown, unknown, valuesEqual } from '../../provider/cty/values.js';
import { impliedType } from '../../provider/schema/schema.js';
import { isCloudtaserError } from '../../runtime/core/errors.js';
import { createEchoProvider } from './support/echo-provider.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const bytes = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

const echo = createEchoProvider({ things: new Map(), calls: [] });
const thingType = impliedType(echo.resources[0].schema.block);
const fixtures = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures', 'plan-create.json'), 'utf8'),
) as {
  values: { field: string; msgpack: string }[];
};
const proposed = fixtures.values.filter((v) => v.field === 'proposed_new_state').map((v) => v.msgpack);
const byName = (name: string) => {
  for (const h of proposed) {
    const v = decodeMsgpack(bytes(h), thingType) as Record<string, unknown>;
    if (v.name === name) return { hex: h, value: v };
  }
  throw new Error(`no fixture for ${name}`);
};

describe('msgpack codec against bytes captured from terraform 1.11.4', () => {
  it('decodes a negative fixint-range integer sent as int8 (d0 d6 = -42)', () => {
    expect(byName('delta').value.count_hint).toBe(-42);
  });

  it('decodes a float64 number (1.5) and a map with __proto__ and non-ASCII keys as ordinary keys', () => {
    const { value } = byName('alpha');
    expect(value.count_hint).toBe(1.5);
    const tags = value.tags as Record<string, string>;
    expect(Object.keys(tags).sort()).toEqual(['__proto__', 'env', 'ünïcode']);
    expect(Object.getOwnPropertyDescriptor(tags, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(tags)).toBeNull();
  });

  it('keeps numbers terraform sends as decimal strings exact (0.1 and 12345678901234567890)', () => {
    expect(byName('gamma').value.count_hint).toEqual(new BigNumber('0.1'));
    const big = byName('beta').value.count_hint;
    expect(big).toBeInstanceOf(BigNumber);
    expect(String(big)).toBe('12345678901234567890');
  });

  it('decodes an unrefined unknown (d4 00 00) and a refined unknown with a string prefix', () => {
    expect(byName('gamma').value.value).toBeInstanceOf(Unknown);
    expect((byName('gamma').value.value as Unknown).refined).toBe(false);
    const refined = byName('beta').value.value as Unknown;
    expect(refined.refinements).toEqual({ notNull: true, stringPrefix: 'pre-' });
  });

  it('re-encodes every captured value to the identical bytes', () => {
    for (const h of proposed)
      expect(hex(encodeMsgpack(decodeMsgpack(bytes(h), thingType), thingType))).toBe(h);
  });
});

describe('msgpack encoding rules', () => {
  const objType: CtyType = ['object', { id: 'string', name: 'string', secret: 'string', value: 'string' }];

  it('writes every attribute, filling missing ones with nil, in sorted order (reference bytes)', () => {
    const out = encodeMsgpack({ name: 'alpha', secret: 's3cr3t', value: 'v1' }, objType);
    expect(hex(out)).toBe('84a26964c0a46e616d65a5616c706861a6736563726574a6733363723374a576616c7565a27631');
  });

  it('writes a plain unknown as d4 00 00 and never an empty refinement map', () => {
    expect(hex(encodeMsgpack(unknown, 'string'))).toBe('d40000');
    expect(hex(encodeMsgpack(new Unknown({}), 'string'))).toBe('d40000');
  });

  it('writes refinements as ext 12 with integer keys', () => {
    const out = encodeMsgpack(new Unknown({ notNull: true, stringPrefix: 'pre-' }), 'string');
    expect(hex(out)).toBe('c7090c8201c202a47072652d');
    const number = encodeMsgpack(
      new Unknown({
        numberLower: { value: 0, inclusive: true },
        numberUpper: { value: 10, inclusive: false },
      }),
      'number',
    );
    expect(decodeMsgpack(number, 'number')).toEqual(
      new Unknown({
        numberLower: { value: 0, inclusive: true },
        numberUpper: { value: 10, inclusive: false },
      }),
    );
    // A bound a double cannot hold exactly comes back exactly (before, it came back rounded: a refinement other
    // than the one Terraform planned).
    const exact = new Unknown({
      numberLower: { value: new BigNumber('9007199254740993'), inclusive: true },
      numberUpper: { value: new BigNumber('0.1'), inclusive: false },
    });
    expect(decodeMsgpack(encodeMsgpack(exact, 'number'), 'number')).toEqual(exact);
    const list = encodeMsgpack(new Unknown({ lengthMin: 1, lengthMax: 3 }), ['list', 'string']);
    expect((decodeMsgpack(list, ['list', 'string']) as Unknown).refinements).toEqual({
      lengthMin: 1,
      lengthMax: 3,
    });
  });

  it('treats every extension type as unknown, skipping refinements it does not know', () => {
    expect(decodeMsgpack(bytes('d5 07 0000'), 'string')).toBeInstanceOf(Unknown);
    // ext 12 with key 9 (future refinement) and key 1
    expect((decodeMsgpack(bytes('c7 06 0c 82 09 a1 78 01 c2'), 'string') as Unknown).refinements).toEqual({
      notNull: true,
    });
  });

  it('encodes numbers as int, float64 or decimal string as go-cty does', () => {
    expect(hex(encodeMsgpack(7, 'number'))).toBe('07');
    expect(hex(encodeMsgpack(-42, 'number'))).toBe('d0d6');
    expect(hex(encodeMsgpack(2 ** 40, 'number'))).toBe('cf0000010000000000');
    expect(hex(encodeMsgpack(1.5, 'number'))).toBe('cb3ff8000000000000');
    expect(hex(encodeMsgpack(new BigNumber('0.1'), 'number'))).toBe('a3302e31');
  });

  it('accepts every msgpack integer and float width for numbers', () => {
    const cases: [string, number][] = [
      ['cc ff', 255],
      ['cd ffff', 65535],
      ['ce ffffffff', 4294967295],
      ['d1 8000', -32768],
      ['d2 80000000', -2147483648],
      ['d3 ffffffffffffffff', -1],
      ['ca 3fc00000', 1.5],
      ['ff', -1],
    ];
    for (const [h, v] of cases) expect(decodeMsgpack(bytes(h), 'number')).toBe(v);
    expect(String(decodeMsgpack(bytes('cf ffffffffffffffff'), 'number'))).toBe('18446744073709551615');
  });

  it('round-trips dynamic values with the type as msgpack bin', () => {
    const value = new Dynamic(['list', 'string'], ['a', 'b']);
    const out = encodeMsgpack(value, 'dynamic');
    expect(hex(out).startsWith('92c4')).toBe(true);
    expect(decodeMsgpack(out, 'dynamic')).toEqual(value);
  });

  it('round-trips arbitrary values of a nested type (property)', () => {
    const type: CtyType = [
      'object',
      {
        s: 'string',
        n: 'number',
        b: 'bool',
        l: ['list', 'string'],
        m: ['map', 'number'],
        t: ['tuple', ['string', 'bool']],
      },
    ];
    const maybe = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, fc.constant(null), fc.constant(unknown));
    const arb = fc.record({
      s: maybe(fc.string()),
      n: maybe(fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))),
      b: maybe(fc.boolean()),
      l: maybe(fc.array(maybe(fc.string()), { maxLength: 20 })),
      m: maybe(fc.dictionary(fc.string(), fc.integer()).map((d) => Object.assign(Object.create(null), d))),
      t: maybe(fc.tuple(fc.string(), fc.boolean())),
    });
    fc.assert(
      fc.property(arb, (value) => {
        const decoded = decodeMsgpack(encodeMsgpack(value as never, type), type);
        const normalized = JSON.parse(JSON.stringify(value, (_k, v) => (Object.is(v, -0) ? 0 : v)));
        return valuesEqual(decoded, normalized, type) || valuesEqual(decoded, value as never, type);
      }),
      { numRuns: 300 },
    );
  });
});

describe('msgpack decoding refuses hostile input with CT_PROVIDER_PROTOCOL', () => {
  const cases: [string, string, CtyType][] = [
    ['truncated string', 'a5 6162', 'string'],
    ['array count larger than the data', 'dd 7fffffff 01', ['list', 'number']],
    ['map count larger than the data', 'df 7fffffff', ['map', 'string']],
    ['unknown attribute', '81 a1 78 c0', ['object', { a: 'string' }]],
    ['wrong kind for bool', 'a1 78', 'bool'],
    ['number string that is not a number', 'a3 616263', 'number'],
    ['trailing bytes', 'c0 c0', 'string'],
    ['invalid UTF-8', 'a2 c328', 'string'],
    ['tuple arity mismatch', '91 c3', ['tuple', ['bool', 'bool']]],
    ['dynamic without bin type', '92 c0 c0', 'dynamic'],
  ];
  for (const [name, h, type] of cases) {
    it(`rejects ${name}`, () => {
      let caught: unknown;
      try {
        decodeMsgpack(bytes(h), type);
      } catch (err) {
        caught = err;
      }
      expect(isCloudtaserError(caught, 'CT_PROVIDER_PROTOCOL'), String(caught)).toBe(true);
    });
  }

  it('rejects nesting deeper than 64 levels instead of overflowing the stack', () => {
    let type: CtyType = 'string';
    for (let i = 0; i < 100; i++) type = ['list', type];
    const data = Buffer.concat([Buffer.alloc(100, 0x91), Buffer.from([0xa0])]);
    expect(() => decodeMsgpack(data, type)).toThrow(/deeper than 64/);
  });
});

describe('msgpack decoding: a bound on what one value may become', () => {
  it('refuses a list of more than a million values (one byte each) instead of exhausting the heap', () => {
    const count = 1_000_001;
    const wire = Buffer.alloc(5 + count, 0xc0); // array32 header, then `count` nils
    wire[0] = 0xdd;
    wire.writeUInt32BE(count, 1);
    let error: unknown;
    try {
      decodeMsgpack(wire, ['list', 'string']);
    } catch (err) {
      error = err;
    }
    expect(isCloudtaserError(error, 'CT_PROVIDER_PROTOCOL')).toBe(true);
    expect((error as Error).message).toContain('more than 1000000 values');
  });
});
