/**
 * The throwaway server certificate for go-plugin AutoMTLS: self-signed ECDSA P-256, CA:true, SAN localhost,
 * EKU serverAuth+clientAuth, made with node:crypto and a few lines of DER. It lives only in this process's
 * memory for its lifetime. The cluster PKI (runtime/pki) is deliberately not used here: it loads node-forge,
 * which alone would add ~40 ms to every one of the 3-5 provider starts Terraform makes per command.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

export interface AutoMtlsCertificate {
  readonly certDer: Buffer;
  readonly certPem: string;
  readonly keyPem: string;
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else if (n < 0x100) length = Buffer.from([0x81, n]);
  else length = Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const seq = (...items: Buffer[]) => der(0x30, ...items);
const oid = (dotted: string): Buffer => {
  const parts = dotted.split('.').map(Number);
  const bytes = [40 * parts[0] + parts[1]];
  for (const part of parts.slice(2)) {
    const chunk = [part & 0x7f];
    for (let v = part >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
};
const utf8 = (text: string) => der(0x0c, Buffer.from(text, 'utf8'));
const octets = (content: Buffer) => der(0x04, content);
const bitString = (content: Buffer) => der(0x03, Buffer.from([0]), content);
const explicit = (n: number, inner: Buffer) => der(0xa0 + n, inner);

function utcTime(date: Date): Buffer {
  const p = (v: number) => String(v).padStart(2, '0');
  const text =
    p(date.getUTCFullYear() % 100) +
    p(date.getUTCMonth() + 1) +
    p(date.getUTCDate()) +
    p(date.getUTCHours()) +
    p(date.getUTCMinutes()) +
    p(date.getUTCSeconds()) +
    'Z';
  return der(0x17, Buffer.from(text, 'ascii'));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [der(0x01, Buffer.from([0xff]))] : []), octets(value));
}

export function createAutoMtlsCertificate(now = new Date()): AutoMtlsCertificate {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const serial = randomBytes(16);
  // Positive and minimal: a leading 0x00 before a byte < 0x80 is illegal DER padding that OpenSSL rejects.
  serial[0] = (serial[0] & 0x7f) | 0x40;
  const name = seq(
    der(0x31, seq(oid('2.5.4.10'), utf8('cloudtaser'))),
    der(0x31, seq(oid('2.5.4.3'), utf8('localhost'))),
  );
  const ecdsaWithSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + 365 * 86_400_000);
  const subjectKeyId = createHash('sha1').update(spki).digest();
  const tbs = seq(
    explicit(0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    ecdsaWithSha256,
    name,
    seq(utcTime(notBefore), utcTime(notAfter)),
    name,
    spki,
    explicit(
      3,
      seq(
        extension('2.5.29.19', true, seq(der(0x01, Buffer.from([0xff])))), // basicConstraints CA:true
        extension('2.5.29.15', true, bitString(Buffer.from([0x84]))), // keyUsage digitalSignature|keyCertSign
        extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))),
        extension('2.5.29.14', false, octets(subjectKeyId)),
        extension('2.5.29.17', false, seq(der(0x82, Buffer.from('localhost', 'ascii')))),
      ),
    ),
  );
  const signature = sign('sha256', tbs, privateKey);
  const certDer = seq(tbs, ecdsaWithSha256, bitString(signature));
  const base64 = certDer.toString('base64');
  return {
    certDer,
    certPem: `-----BEGIN CERTIFICATE-----\n${(base64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}
