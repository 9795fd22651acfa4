import { describe, expect, it } from 'vitest';
import * as m from '../../provider/wire/messages.js';
import { decodeMessage, encodeMessage } from '../../provider/wire/protobuf.js';
import { isCloudtaserError } from '../../runtime/core/errors.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('table-driven protobuf codec', () => {
  it('encodes a diagnostic with an attribute path byte-for-byte as protoc would', () => {
    const out = encodeMessage(m.Diagnostic, {
      severity: 1,
      summary: 'S',
      detail: 'D',
      attribute: { steps: [{ attributeName: 'name' }, { elementKeyInt: 0 }] },
    });
    // 08 01 | 12 01 'S' | 1a 01 'D' | 22 0a (0a 06 (0a 04 'name') 0a 02 (18 00))
    expect(hex(out)).toBe('08011201531a0144220c0a060a046e616d650a021800');
  });

  it('round-trips maps of messages, repeated fields and bytes', () => {
    const value = {
      provider: { version: 0, block: { version: 0, attributes: [], blockTypes: [], description: 'p' } },
      resourceSchemas: {
        a_b: {
          version: 2,
          block: { attributes: [{ name: 'x', type: new TextEncoder().encode('"string"'), required: true }] },
        },
      },
      diagnostics: [],
      serverCapabilities: { planDestroy: true, getProviderSchemaOptional: true },
    };
    const decoded = decodeMessage(
      m.GetProviderSchemaResponse,
      encodeMessage(m.GetProviderSchemaResponse, value),
    );
    expect(decoded.resourceSchemas.a_b.version).toBe(2);
    expect(new TextDecoder().decode(decoded.resourceSchemas.a_b.block.attributes[0].type)).toBe('"string"');
    expect(decoded.serverCapabilities).toEqual({ planDestroy: true, getProviderSchemaOptional: true });
  });

  it("encodes negative int64 as ten-byte two's complement and decodes it back", () => {
    const out = encodeMessage(m.AttributePathStep, { elementKeyInt: -1 });
    expect(hex(out)).toBe('18ffffffffffffffffff01');
    expect(decodeMessage(m.AttributePathStep, out).elementKeyInt).toBe(-1);
  });

  it('skips fields it does not know (newer Terraform) of every wire type', () => {
    // field 99 varint, field 98 fixed64, field 97 length-delimited, field 96 fixed32, then type_name
    const known = encodeMessage(m.ValidateResourceConfigRequest, { typeName: 't' });
    const extra = Buffer.concat([
      Buffer.from([0x98, 0x06, 0x05]),
      Buffer.from([0x91, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]),
      Buffer.from([0x8a, 0x06, 0x02, 0x61, 0x62]),
      Buffer.from([0x85, 0x06, 1, 2, 3, 4]),
      Buffer.from(known),
    ]);
    expect(decodeMessage(m.ValidateResourceConfigRequest, extra).typeName).toBe('t');
  });

  it('keeps a map key named __proto__ as data', () => {
    const out = encodeMessage(m.GetProviderSchemaResponse, {
      resourceSchemas: { __proto__x: { version: 1 } },
    });
    const entry = Buffer.from(out).toString('hex').replace('5f5f70726f746f5f5f78', '5f5f70726f746f5f5f20');
    const decoded = decodeMessage(m.GetProviderSchemaResponse, Buffer.from(entry, 'hex'));
    expect(Object.keys(decoded.resourceSchemas)).toEqual(['__proto__ ']);
  });

  for (const [name, data] of [
    ['truncated length-delimited field', '0a05616263'],
    ['varint longer than ten bytes', '08ffffffffffffffffffffff01'],
    ['wrong wire type for a string field', '0801'],
    ['unsupported wire type', '0f'],
  ] as const) {
    it(`refuses a ${name} with CT_PROVIDER_PROTOCOL`, () => {
      let caught: unknown;
      try {
        decodeMessage(m.ValidateResourceConfigRequest, Buffer.from(data, 'hex'));
      } catch (err) {
        caught = err;
      }
      expect(isCloudtaserError(caught, 'CT_PROVIDER_PROTOCOL'), String(caught)).toBe(true);
    });
  }
});

describe('protobuf decoding: a bound on what one message may become', () => {
  it('refuses a message of more than a million repeated elements (each 2 bytes on the wire) instead of exhausting the heap', () => {
    // CallFunction.Request with 1,000,001 empty `arguments` (field 2, length 0): 2 MB on the wire, a million
    // objects decoded. The old decoder built them all; at 100 million (200 MB, under the gRPC limit) the
    // provider died of heap exhaustion without an answer.
    const count = 1_000_001;
    const wire = Buffer.alloc(count * 2);
    for (let i = 0; i < count; i++) wire[i * 2] = 0x12;
    let error: unknown;
    try {
      decodeMessage(m.CallFunctionRequest, wire);
    } catch (err) {
      error = err;
    }
    expect(isCloudtaserError(error, 'CT_PROVIDER_PROTOCOL')).toBe(true);
    expect((error as Error).message).toContain('more than 1000000 repeated elements');
  });

  it('still decodes a large legitimate message (100,000 arguments)', () => {
    const count = 100_000;
    const wire = Buffer.alloc(count * 2);
    for (let i = 0; i < count; i++) wire[i * 2] = 0x12;
    expect((decodeMessage(m.CallFunctionRequest, wire).arguments as unknown[]).length).toBe(count);
  });
});
