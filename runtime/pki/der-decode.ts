import forge from 'node-forge';

/**
 * Strict DER decoding, for the parts of a certificate request we read (the algorithm, the subject's common name,
 * the requested DNS names), by node-forge's ASN.1 parser. Requests come from peers, so we keep a parser that has
 * met hostile input for years. What we write goes through der.ts.
 */
const asn1 = forge.asn1;
export type Asn1 = forge.asn1.Asn1;

export function fromDer(der: Uint8Array): Asn1 {
  // decodeBitStrings off: BIT STRING contents stay opaque bytes (signatures, keys), as we want them.
  const options = { strict: true, decodeBitStrings: false } as unknown as boolean;
  return asn1.fromDer(forge.util.createBuffer(binary(der)), options);
}
export function oidOf(node: Asn1): string {
  return asn1.derToOid(forge.util.createBuffer(node.value as string));
}
function binary(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('binary');
}
