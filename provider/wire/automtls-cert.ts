/**
 * The throwaway server certificate for go-plugin AutoMTLS: self-signed ECDSA P-256, CA:true, SAN localhost,
 * EKU serverAuth+clientAuth, made with node:crypto and the project's DER writer (runtime/pki/der.ts, which
 * imports nothing: the rest of runtime/pki loads node-forge, which alone would add ~40 ms to every one of the
 * 3-5 provider starts Terraform makes per command). It lives only in this process's memory for its lifetime.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import {
  bits,
  bool,
  explicit,
  extension,
  implicitPrimitive,
  integerFromBytes,
  OID,
  octets,
  oid,
  seq,
  set,
  smallInteger,
  time,
  utf8,
} from '../../runtime/pki/der.js';

export interface AutoMtlsCertificate {
  readonly certDer: Buffer;
  readonly certPem: string;
  readonly keyPem: string;
}

export function createAutoMtlsCertificate(now = new Date()): AutoMtlsCertificate {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const serial = randomBytes(16);
  // Positive and minimal: a leading 0x00 before a byte < 0x80 is illegal DER padding that OpenSSL rejects.
  serial[0] = (serial[0] & 0x7f) | 0x40;
  const name = seq([
    set([seq([oid(OID.organization), utf8('cloudtaser')])]),
    set([seq([oid(OID.commonName), utf8('localhost')])]),
  ]);
  const ecdsaWithSha256 = seq([oid(OID.ecdsaWithSha256)]);
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + 365 * 86_400_000);
  const subjectKeyId = createHash('sha1').update(spki).digest();
  const tbs = seq([
    explicit(0, smallInteger(2)),
    integerFromBytes(serial),
    ecdsaWithSha256,
    name,
    seq([time(notBefore), time(notAfter)]),
    name,
    spki,
    explicit(
      3,
      seq([
        extension(OID.basicConstraints, true, seq([bool(true)])), // CA:true
        extension(OID.keyUsage, true, bits(Buffer.from([0x84]))), // digitalSignature|keyCertSign
        extension(OID.extKeyUsage, false, seq([oid(OID.serverAuth), oid(OID.clientAuth)])),
        extension(OID.subjectKeyIdentifier, false, octets(subjectKeyId)),
        extension(OID.subjectAltName, false, seq([implicitPrimitive(2, 'localhost')])),
      ]),
    ),
  ]);
  const signature = sign('sha256', tbs, privateKey);
  const certDer = seq([tbs, ecdsaWithSha256, bits(signature)]);
  const base64 = certDer.toString('base64');
  return {
    certDer,
    certPem: `-----BEGIN CERTIFICATE-----\n${(base64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}
