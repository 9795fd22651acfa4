import forge from 'node-forge';

/**
 * DER building blocks on top of node-forge's ASN.1 encoder. node-forge cannot create EC certificates, but
 * its ASN.1 layer is a sound DER writer; keys and signatures come from node:crypto.
 */
const asn1 = forge.asn1;
export type Asn1 = forge.asn1.Asn1;

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

const { Class, Type } = asn1;

export function seq(items: Asn1[]): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items);
}
export function set(items: Asn1[]): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.SET, true, items);
}
export function oid(value: string): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(value).getBytes());
}
export function bool(value: boolean): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.BOOLEAN, false, value ? '\xff' : '\x00');
}
export function integerFromBytes(bytes: Uint8Array): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.INTEGER, false, binary(bytes));
}
export function smallInteger(value: number): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(value).getBytes());
}
export function utf8(value: string): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.UTF8, false, forge.util.encodeUtf8(value));
}
export function octets(bytes: Uint8Array): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, binary(bytes));
}
/** BIT STRING with zero unused bits. */
export function bits(bytes: Uint8Array): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, `\x00${binary(bytes)}`);
}
export function explicit(tag: number, inner: Asn1): Asn1 {
  return asn1.create(Class.CONTEXT_SPECIFIC, tag, true, [inner]);
}
export function implicitPrimitive(tag: number, bytes: Uint8Array | string): Asn1 {
  return asn1.create(Class.CONTEXT_SPECIFIC, tag, false, typeof bytes === 'string' ? bytes : binary(bytes));
}
export function implicitConstructed(tag: number, items: Asn1[]): Asn1 {
  return asn1.create(Class.CONTEXT_SPECIFIC, tag, true, items);
}
/** X.509 Time: UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
export function time(date: Date): Asn1 {
  return date.getUTCFullYear() < 2050
    ? asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}
/** Embeds already-encoded DER (an SPKI from node:crypto) as a node. */
export function raw(der: Uint8Array): Asn1 {
  return asn1.fromDer(forge.util.createBuffer(binary(der)));
}
export function toDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}
export function fromDer(der: Uint8Array): Asn1 {
  // decodeBitStrings off: BIT STRING contents stay opaque bytes (signatures, keys), as we want them.
  const options = { strict: true, decodeBitStrings: false } as unknown as boolean;
  return asn1.fromDer(forge.util.createBuffer(binary(der)), options);
}
export function binary(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('binary');
}
export function oidOf(node: Asn1): string {
  return asn1.derToOid(forge.util.createBuffer(node.value as string));
}

/** One TLV located in a buffer: lets us slice the exact signed bytes instead of re-encoding them. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export function readTlv(buf: Uint8Array, offset: number): Tlv {
  if (offset + 2 > buf.length) throw new RangeError('truncated DER');
  const tag = buf[offset];
  let length = buf[offset + 1];
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || contentStart + count > buf.length) throw new RangeError('bad DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[contentStart + i];
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > buf.length) throw new RangeError('DER length runs past the buffer');
  return { tag, start: offset, contentStart, end };
}

/** The direct children of a constructed TLV. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readTlv(buf, offset);
    out.push(child);
    offset = child.end;
  }
  if (offset !== parent.end) throw new RangeError('DER children overrun their parent');
  return out;
}
