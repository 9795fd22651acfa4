import fc from 'fast-check';
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import {
  bits,
  bool,
  children,
  explicit,
  implicitConstructed,
  implicitPrimitive,
  integerFromBytes,
  octets,
  oid,
  readTlv,
  seq,
  set,
  smallInteger,
  time,
  utf8,
} from './der.js';

/** node-forge's ASN.1 encoder, which wrote our certificates before der.ts did: the reference for every block. */
const asn1 = forge.asn1;
const { Class, Type } = asn1;
const binary = (bytes: Uint8Array) => Buffer.from(bytes).toString('binary');
const forgeDer = (node: forge.asn1.Asn1) =>
  Buffer.from(asn1.toDer(node).getBytes(), 'binary').toString('hex');
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const primitive = (type: number, value: string) => asn1.create(Class.UNIVERSAL, type, false, value);

describe('DER writer', () => {
  it('writes every block byte for byte as node-forge does, short and long lengths alike', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000 }), fc.string(), (bytes, text) => {
        expect(hex(octets(bytes))).toBe(forgeDer(primitive(Type.OCTETSTRING, binary(bytes))));
        expect(hex(bits(bytes))).toBe(forgeDer(primitive(Type.BITSTRING, `\x00${binary(bytes)}`)));
        expect(hex(utf8(text))).toBe(forgeDer(primitive(Type.UTF8, forge.util.encodeUtf8(text))));
        // [7] (iPAddress) for bytes: forge treats any tag number 2 as an INTEGER and drops a leading zero byte,
        // which a dNSName [2] (ASCII text, below) never has.
        expect(hex(implicitPrimitive(7, bytes))).toBe(
          forgeDer(asn1.create(Class.CONTEXT_SPECIFIC, 7, false, binary(bytes))),
        );
        const name = text.replace(/[^\x21-\x7e]/g, 'a');
        expect(hex(implicitPrimitive(2, name))).toBe(
          forgeDer(asn1.create(Class.CONTEXT_SPECIFIC, 2, false, name)),
        );
        const inner = utf8(text);
        const forgeInner = primitive(Type.UTF8, forge.util.encodeUtf8(text));
        expect(hex(seq([inner, octets(bytes)]))).toBe(
          forgeDer(
            asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
              forgeInner,
              primitive(Type.OCTETSTRING, binary(bytes)),
            ]),
          ),
        );
        expect(hex(set([inner]))).toBe(forgeDer(asn1.create(Class.UNIVERSAL, Type.SET, true, [forgeInner])));
        expect(hex(explicit(3, inner))).toBe(
          forgeDer(asn1.create(Class.CONTEXT_SPECIFIC, 3, true, [forgeInner])),
        );
        expect(hex(implicitConstructed(0, [inner]))).toBe(
          forgeDer(asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [forgeInner])),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('writes OIDs, integers, booleans and X.509 times as node-forge does', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 2),
        fc.integer({ min: 0, max: 39 }),
        fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 8 }),
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.date({
          min: new Date('1950-01-01T00:00:00Z'),
          max: new Date('2199-12-31T23:59:59Z'),
          noInvalidDate: true,
        }),
        (first, second, rest, int, date) => {
          const dotted = [first, second, ...rest].join('.');
          expect(hex(oid(dotted))).toBe(forgeDer(primitive(Type.OID, asn1.oidToDer(dotted).getBytes())));
          expect(hex(smallInteger(int))).toBe(
            forgeDer(primitive(Type.INTEGER, asn1.integerToDer(int).getBytes())),
          );
          const forgeTime =
            date.getUTCFullYear() < 2050
              ? primitive(Type.UTCTIME, asn1.dateToUtcTime(date))
              : primitive(Type.GENERALIZEDTIME, asn1.dateToGeneralizedTime(date));
          expect(hex(time(date))).toBe(forgeDer(forgeTime));
        },
      ),
    );
    expect(hex(bool(true))).toBe('0101ff');
    expect(hex(bool(false))).toBe('010100');
  });

  it('keeps an INTEGER minimal: drops redundant leading bytes and keeps the sign byte', () => {
    expect(hex(integerFromBytes(Uint8Array.of(0x00, 0x00, 0x7f)))).toBe('02017f');
    expect(hex(integerFromBytes(Uint8Array.of(0x00, 0x80)))).toBe('02020080');
    expect(hex(integerFromBytes(Uint8Array.of(0xff, 0xff, 0x80)))).toBe('020180');
    expect(hex(integerFromBytes(Uint8Array.of(0x00)))).toBe('020100');
    expect(hex(smallInteger(2))).toBe('020102');
    expect(hex(smallInteger(-129))).toBe('0202ff7f');
  });

  it('orders the elements of a SET OF by their encodings', () => {
    expect(hex(set([utf8('b'), utf8('a')]))).toBe(hex(set([utf8('a'), utf8('b')])));
  });

  it('reads back what it writes', () => {
    const der = seq([oid('2.5.4.3'), octets(new Uint8Array(300)), explicit(0, smallInteger(2))]);
    const outer = readTlv(der, 0);
    expect(outer.end).toBe(der.length);
    expect(children(der, outer).map((child) => child.tag)).toEqual([0x06, 0x04, 0xa0]);
  });
});
