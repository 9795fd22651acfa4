/**
 * The project's one DER writer, and a TLV walker for reading back what it or others wrote. Every certificate and
 * request we build is assembled from these blocks: the cluster PKI (certificates.ts) and the provider's AutoMTLS
 * certificate (provider/wire/automtls-cert.ts). Each block returns its finished encoding, so a structure is
 * built bottom up with no encoder pass at the end. Imports nothing, so the provider can make its handshake
 * certificate without loading node-forge (about 40 ms per provider start); keys and signatures come from
 * node:crypto.
 */

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

const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  /** Context-specific class; add the tag number, and CONSTRUCTED for a constructed one. */
  context: 0x80,
  constructed: 0x20,
} as const;

/** One TLV: the tag byte, the definite length (short form below 128, else long form), the contents. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  let length: number[];
  if (n < 0x80) length = [n];
  else {
    length = [];
    for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) length.unshift(rest & 0xff);
    length.unshift(0x80 | length.length);
  }
  return Buffer.concat([Buffer.from([tag, ...length]), content]);
}

export function seq(items: readonly Uint8Array[]): Buffer {
  return tlv(TAG.sequence, Buffer.concat(items));
}
/** SET OF: DER orders the elements by their encodings. */
export function set(items: readonly Uint8Array[]): Buffer {
  return tlv(TAG.set, Buffer.concat([...items].sort(Buffer.compare)));
}
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((arc) => !Number.isSafeInteger(arc) || arc < 0) || arcs[0] > 2)
    throw new RangeError(`invalid OID ${dotted}`);
  const bytes: number[] = [];
  for (const arc of [40 * arcs[0] + arcs[1], ...arcs.slice(2)]) {
    // Base 128, most significant group first, every byte but the last with the high bit set.
    const groups = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128))
      groups.unshift((rest & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(TAG.oid, Buffer.from(bytes));
}
export function bool(value: boolean): Buffer {
  return tlv(TAG.boolean, Buffer.from([value ? 0xff : 0x00]));
}
/** An INTEGER from its two's-complement bytes, with redundant leading bytes dropped (DER is minimal). */
export function integerFromBytes(bytes: Uint8Array): Buffer {
  let start = 0;
  while (
    start < bytes.length - 1 &&
    ((bytes[start] === 0x00 && (bytes[start + 1] & 0x80) === 0) ||
      (bytes[start] === 0xff && (bytes[start + 1] & 0x80) !== 0))
  )
    start++;
  return tlv(TAG.integer, bytes.subarray(start));
}
export function smallInteger(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < -(2 ** 31) || value >= 2 ** 31)
    throw new RangeError(`${value} is not a 32-bit integer`);
  const bytes = Buffer.alloc(4);
  bytes.writeInt32BE(value);
  return integerFromBytes(bytes);
}
export function utf8(value: string): Buffer {
  return tlv(TAG.utf8String, Buffer.from(value, 'utf8'));
}
export function octets(bytes: Uint8Array): Buffer {
  return tlv(TAG.octetString, bytes);
}
/** BIT STRING with zero unused bits. */
export function bits(bytes: Uint8Array): Buffer {
  return tlv(TAG.bitString, Buffer.concat([Buffer.from([0]), bytes]));
}
export function explicit(tag: number, inner: Uint8Array): Buffer {
  return tlv(TAG.context | TAG.constructed | tag, inner);
}
/** A context-specific primitive, e.g. a dNSName [2] (text is taken byte for byte: names are ASCII). */
export function implicitPrimitive(tag: number, bytes: Uint8Array | string): Buffer {
  return tlv(TAG.context | tag, typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
}
export function implicitConstructed(tag: number, items: readonly Uint8Array[]): Buffer {
  return tlv(TAG.context | TAG.constructed | tag, Buffer.concat(items));
}
/** X.509 Time to the second: UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
export function time(date: Date): Buffer {
  const two = (value: number) => String(value).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  const year = date.getUTCFullYear();
  return year < 2050
    ? tlv(TAG.utcTime, Buffer.from(`${two(year % 100)}${rest}`, 'ascii'))
    : tlv(TAG.generalizedTime, Buffer.from(`${year}${rest}`, 'ascii'));
}
/** An X.509 extension: its OID, `critical` only when true (DER leaves out a default), the value's DER. */
export function extension(id: string, critical: boolean, value: Uint8Array): Buffer {
  return seq([oid(id), ...(critical ? [bool(true)] : []), octets(value)]);
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
