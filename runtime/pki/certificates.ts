import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
  X509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';
import { CloudtaserError } from '../core/errors.js';
import {
  bits,
  bool,
  children,
  explicit,
  extension,
  implicitConstructed,
  implicitPrimitive,
  integerFromBytes,
  OID,
  octets,
  oid,
  readTlv,
  seq,
  set,
  smallInteger,
  time,
  utf8,
} from './der.js';
import { type Asn1, fromDer, oidOf } from './der-decode.js';
import { LIFETIME_DAYS } from './lifetimes.js';

export { LIFETIME_DAYS };

const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

export type ExtKeyUsage = 'serverAuth' | 'clientAuth';

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** An ECDSA P-256 key pair, in memory only. */
export function generateKeyPair(): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

export function privateKeyToPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export interface IssuedCertificate {
  readonly certPem: string;
  readonly certDer: Buffer;
  /** Present when this call generated the key; never logged, never written to disk by this module. */
  readonly keyPem?: string;
}

export interface CertificateAuthority {
  readonly certPem: string;
  readonly certDer: Buffer;
  readonly keyPem: string;
  readonly privateKey: KeyObject;
  readonly certificate: X509Certificate;
}

export interface SubjectOptions {
  readonly commonName: string;
  readonly organization?: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly days?: number;
  readonly extKeyUsage?: readonly ExtKeyUsage[];
  /** Fixed validity start; defaults to now minus the skew allowance. Tests use it for clock-skew cases. */
  readonly notBefore?: Date;
}

/** Creates a cluster CA: self-signed, CA:true with pathLen 0 (it signs leaves only). */
export function createCertificateAuthority(options: {
  commonName: string;
  organization?: string;
  days?: number;
}): CertificateAuthority {
  const keys = generateKeyPair();
  const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
  const name = distinguishedName(options.commonName, options.organization ?? 'cloudtaser');
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const skid = keyIdentifier(spki);
  const certDer = buildCertificate({
    issuer: name,
    subject: name,
    spki,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.days ?? LIFETIME_DAYS.ca) * DAY_MS),
    extensions: [
      extension(OID.basicConstraints, true, seq([bool(true), smallInteger(0)])),
      extension(
        OID.keyUsage,
        true,
        keyUsageBits({ digitalSignature: true, keyCertSign: true, cRLSign: true }),
      ),
      extension(OID.subjectKeyIdentifier, false, octets(skid)),
    ],
    signingKey: keys.privateKey,
  });
  return {
    certDer,
    certPem: derToPem(certDer, 'CERTIFICATE'),
    keyPem: privateKeyToPem(keys.privateKey),
    privateKey: keys.privateKey,
    certificate: new X509Certificate(certDer),
  };
}

/** Rebuilds a CA handle from the PEMs stored in OpenBao. */
export function loadCertificateAuthority(certPem: string, keyPem: string): CertificateAuthority {
  try {
    const certificate = new X509Certificate(certPem);
    const privateKey = createPrivateKey(keyPem);
    if (!certificate.checkPrivateKey(privateKey))
      throw new Error('the key does not belong to the certificate');
    if (!certificate.ca) throw new Error('the certificate is not a CA');
    return { certificate, privateKey, certPem: certificate.toString(), certDer: certificate.raw, keyPem };
  } catch (err) {
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      `stored cluster CA is unusable: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** Issues a leaf certificate signed by `ca` for `publicKey`, or for a fresh key returned as `keyPem`. */
export function issueCertificate(
  ca: CertificateAuthority,
  options: SubjectOptions & { readonly publicKey?: KeyObject },
): IssuedCertificate {
  const keys = options.publicKey ? undefined : generateKeyPair();
  const publicKey = options.publicKey ?? keys!.publicKey;
  const certDer = buildLeaf(ca, publicKey, options);
  return {
    certDer,
    certPem: derToPem(certDer, 'CERTIFICATE'),
    keyPem: keys ? privateKeyToPem(keys.privateKey) : undefined,
  };
}

/**
 * A self-signed certificate that is its own trust anchor (CA:true), as go-plugin's AutoMTLS and the dev stack
 * want: one PEM serves as both the server certificate and the CA a client pins.
 */
export function issueSelfSignedSync(options: SubjectOptions): Required<IssuedCertificate> {
  const keys = generateKeyPair();
  const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
  const name = distinguishedName(options.commonName, options.organization ?? 'cloudtaser');
  const notBefore = options.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  const certDer = buildCertificate({
    issuer: name,
    subject: name,
    spki,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.days ?? LIFETIME_DAYS.devServer) * DAY_MS),
    extensions: [
      extension(OID.basicConstraints, true, seq([bool(true)])),
      extension(OID.keyUsage, true, keyUsageBits({ digitalSignature: true, keyCertSign: true })),
      extension(
        OID.extKeyUsage,
        false,
        seq((options.extKeyUsage ?? ['serverAuth', 'clientAuth']).map(ekuOid)),
      ),
      extension(OID.subjectKeyIdentifier, false, octets(keyIdentifier(spki))),
      ...subjectAltNameExtension(options),
    ],
    signingKey: keys.privateKey,
  });
  return { certDer, certPem: derToPem(certDer, 'CERTIFICATE'), keyPem: privateKeyToPem(keys.privateKey) };
}

export async function issueSelfSigned(options: SubjectOptions): Promise<Required<IssuedCertificate>> {
  return issueSelfSignedSync(options);
}

export interface CertificateSigningRequest {
  readonly csrPem: string;
  readonly csrDer: Buffer;
  readonly privateKey: KeyObject;
}

/** Creates a PKCS#10 request for a fresh in-memory key (or the one given). */
export function createCsr(options: {
  commonName: string;
  dnsNames?: readonly string[];
  keyPair?: KeyPair;
}): CertificateSigningRequest {
  const keys = options.keyPair ?? generateKeyPair();
  const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
  const attributes: Buffer[] = [];
  const san = subjectAltNameExtension({ dnsNames: options.dnsNames });
  if (san.length > 0) attributes.push(seq([oid(OID.extensionRequest), set([seq(san)])]));
  const infoDer = seq([
    smallInteger(0),
    distinguishedName(options.commonName),
    spki,
    implicitConstructed(0, attributes),
  ]);
  const signature = sign('sha256', infoDer, { key: keys.privateKey, dsaEncoding: 'der' });
  const csrDer = seq([infoDer, seq([oid(OID.ecdsaWithSha256)]), bits(signature)]);
  return { csrDer, csrPem: derToPem(csrDer, 'CERTIFICATE REQUEST'), privateKey: keys.privateKey };
}

export interface ParsedCsr {
  readonly publicKey: KeyObject;
  readonly commonName?: string;
  readonly dnsNames: string[];
  /** SHA-256 of the request's SubjectPublicKeyInfo DER, hex: what attestation binds. */
  readonly publicKeySha256: string;
}

/** Largest CSR we accept: a P-256 request with a handful of SANs is well under 1 KiB. */
export const MAX_CSR_BYTES = 4096;

/**
 * Parses and verifies a CSR: well-formed DER, an ECDSA P-256 key, a valid self-signature. Anything else is
 * `CT_PKI_INVALID_CSR`, so a hostile peer cannot get an odd key type or a forged request signed.
 */
export function parseCsr(csr: string | Uint8Array): ParsedCsr {
  try {
    const der = typeof csr === 'string' ? pemToDer(csr, 'CERTIFICATE REQUEST') : Buffer.from(csr);
    if (der.length > MAX_CSR_BYTES)
      throw new Error(`request is ${der.length} bytes; the limit is ${MAX_CSR_BYTES}`);
    const outer = readTlv(der, 0);
    if (outer.end !== der.length) throw new Error('trailing bytes after the request');
    const [info, algorithm, signature] = children(der, outer);
    if (!info || !algorithm || !signature || signature.tag !== 0x03)
      throw new Error('not a PKCS#10 structure');
    const [, subject, spkiTlv] = children(der, info);
    if (!subject || !spkiTlv) throw new Error('request info is incomplete');
    const spki = der.subarray(spkiTlv.start, spkiTlv.end);
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('only ECDSA P-256 keys are accepted');
    }
    const algorithmOid = oidOf(fromDer(der.subarray(algorithm.start, algorithm.end)).value[0] as Asn1);
    if (algorithmOid !== OID.ecdsaWithSha256)
      throw new Error(`unsupported signature algorithm ${algorithmOid}`);
    // BIT STRING: first content byte is the unused-bit count.
    const sig = der.subarray(signature.contentStart + 1, signature.end);
    if (!verify('sha256', der.subarray(info.start, info.end), { key: publicKey, dsaEncoding: 'der' }, sig)) {
      throw new Error('the request signature does not verify');
    }
    const infoNode = fromDer(der.subarray(info.start, info.end));
    return {
      publicKey,
      commonName: readCommonName(infoNode.value[1] as Asn1),
      dnsNames: readRequestedDnsNames(infoNode.value[3] as Asn1 | undefined),
      publicKeySha256: createHash('sha256').update(spki).digest('hex'),
    };
  } catch (err) {
    if (err instanceof CloudtaserError) throw err;
    throw new CloudtaserError(
      'CT_PKI_INVALID_CSR',
      `certificate signing request refused: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Signs a verified CSR. The signer, not the requester, decides the subject, names and usages: the CSR only
 * contributes its public key (and requested DNS names when the caller's policy allows them).
 */
export function signCsr(
  ca: CertificateAuthority,
  csr: string | Uint8Array,
  options: SubjectOptions,
): IssuedCertificate {
  const parsed = parseCsr(csr);
  return issueCertificate(ca, { ...options, publicKey: parsed.publicKey });
}

/** True when `cert` was signed by `caCert` and is within its validity period at `at`. */
export function isIssuedBy(
  cert: string | X509Certificate,
  caCert: string | X509Certificate,
  at = new Date(),
): boolean {
  try {
    const leaf = typeof cert === 'string' ? new X509Certificate(cert) : cert;
    const ca = typeof caCert === 'string' ? new X509Certificate(caCert) : caCert;
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return false;
    return new Date(leaf.validFrom) <= at && at <= new Date(leaf.validTo);
  } catch {
    return false;
  }
}

/** True when the certificate carries the public half of `privateKey`. */
export function certificateMatchesKey(cert: string | X509Certificate, privateKey: KeyObject): boolean {
  try {
    return (typeof cert === 'string' ? new X509Certificate(cert) : cert).checkPrivateKey(privateKey);
  } catch {
    return false;
  }
}

export function derToPem(der: Uint8Array, label: string): string {
  const body = Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

export function pemToDer(pem: string, label: string): Buffer {
  const match = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!match) throw new Error(`expected a PEM block labelled ${label}`);
  return Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
}

/** SHA-256 of a certificate's DER, hex: the operational room key when applied to the cluster CA. */
export function certificateSha256(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

// --- private helpers ---

function buildLeaf(ca: CertificateAuthority, publicKey: KeyObject, options: SubjectOptions): Buffer {
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const notBefore = options.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  const usages = options.extKeyUsage ?? ['clientAuth'];
  const caSpki = ca.certificate.publicKey.export({ format: 'der', type: 'spki' });
  return buildCertificate({
    issuer: subjectDer(ca.certDer),
    subject: distinguishedName(options.commonName, options.organization),
    spki,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.days ?? LIFETIME_DAYS.broker) * DAY_MS),
    extensions: [
      extension(OID.basicConstraints, true, seq([])),
      extension(OID.keyUsage, true, keyUsageBits({ digitalSignature: true })),
      extension(OID.extKeyUsage, false, seq(usages.map(ekuOid))),
      extension(OID.subjectKeyIdentifier, false, octets(keyIdentifier(spki))),
      extension(OID.authorityKeyIdentifier, false, seq([implicitPrimitive(0, keyIdentifier(caSpki))])),
      ...subjectAltNameExtension(options),
    ],
    signingKey: ca.privateKey,
  });
}

interface CertificateParts {
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly spki: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: Buffer[];
  readonly signingKey: KeyObject;
}

function buildCertificate(parts: CertificateParts): Buffer {
  const serial = randomBytes(16);
  serial[0] &= 0x7f; // positive INTEGER
  serial[0] |= 0x01; // no leading zero byte, so the encoding is minimal DER
  const algorithm = seq([oid(OID.ecdsaWithSha256)]);
  const tbsDer = seq([
    explicit(0, smallInteger(2)),
    integerFromBytes(serial),
    algorithm,
    parts.issuer,
    seq([time(parts.notBefore), time(parts.notAfter)]),
    parts.subject,
    parts.spki,
    explicit(3, seq(parts.extensions)),
  ]);
  const signature = sign('sha256', tbsDer, { key: parts.signingKey, dsaEncoding: 'der' });
  return seq([tbsDer, seq([oid(OID.ecdsaWithSha256)]), bits(signature)]);
}

function distinguishedName(commonName: string, organization?: string): Buffer {
  const rdns: Buffer[] = [];
  if (organization) rdns.push(set([seq([oid(OID.organization), utf8(organization)])]));
  rdns.push(set([seq([oid(OID.commonName), utf8(commonName)])]));
  return seq(rdns);
}

function subjectDer(certDer: Buffer): Buffer {
  const cert = readTlv(certDer, 0);
  const [tbs] = children(certDer, cert);
  const fields = children(certDer, tbs);
  // version [0], serial, signature, issuer, validity, subject
  const subject = fields[0].tag === 0xa0 ? fields[5] : fields[4];
  return certDer.subarray(subject.start, subject.end);
}

function keyUsageBits(usage: {
  digitalSignature?: boolean;
  keyCertSign?: boolean;
  cRLSign?: boolean;
}): Buffer {
  // Bit 0 is the most significant bit of the first byte (X.509 KeyUsage numbering).
  let byte = 0;
  if (usage.digitalSignature) byte |= 0x80;
  if (usage.keyCertSign) byte |= 0x04;
  if (usage.cRLSign) byte |= 0x02;
  return bits(Uint8Array.of(byte));
}

function ekuOid(usage: ExtKeyUsage): Buffer {
  return oid(usage === 'serverAuth' ? OID.serverAuth : OID.clientAuth);
}

function subjectAltNameExtension(options: {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}): Buffer[] {
  const names: Buffer[] = [];
  for (const dns of options.dnsNames ?? []) names.push(implicitPrimitive(2, dns));
  for (const ip of options.ipAddresses ?? []) names.push(implicitPrimitive(7, ipBytes(ip)));
  return names.length === 0 ? [] : [extension(OID.subjectAltName, false, seq(names))];
}

function ipBytes(ip: string): Uint8Array {
  const family = isIP(ip);
  if (family === 4) return Uint8Array.from(ip.split('.').map(Number));
  if (family === 6) {
    const [head, tail = ''] = ip.split('::');
    const headParts = head ? head.split(':') : [];
    const tailParts = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
    const groups = [...headParts, ...Array(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
    const out = new Uint8Array(16);
    groups.forEach((group, i) => {
      const value = Number.parseInt(group, 16);
      out[i * 2] = value >> 8;
      out[i * 2 + 1] = value & 0xff;
    });
    return out;
  }
  throw new CloudtaserError('CT_INVALID_ARGUMENT', `${JSON.stringify(ip)} is not an IP address`);
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
function keyIdentifier(spki: Buffer): Buffer {
  const outer = readTlv(spki, 0);
  const [, key] = children(spki, outer);
  return createHash('sha1')
    .update(spki.subarray(key.contentStart + 1, key.end))
    .digest();
}

function readCommonName(name: Asn1): string | undefined {
  for (const rdn of name.value as Asn1[]) {
    for (const attribute of rdn.value as Asn1[]) {
      const [type, value] = attribute.value as Asn1[];
      if (oidOf(type) === OID.commonName)
        return Buffer.from(value.value as string, 'binary').toString('utf8');
    }
  }
  return undefined;
}

function readRequestedDnsNames(attributes: Asn1 | undefined): string[] {
  const names: string[] = [];
  if (!attributes || !Array.isArray(attributes.value)) return names;
  for (const attribute of attributes.value as Asn1[]) {
    const [type, values] = attribute.value as Asn1[];
    if (oidOf(type) !== OID.extensionRequest) continue;
    for (const extensions of values.value as Asn1[]) {
      for (const ext of extensions.value as Asn1[]) {
        const parts = ext.value as Asn1[];
        if (oidOf(parts[0]) !== OID.subjectAltName) continue;
        const san = fromDer(Buffer.from(parts[parts.length - 1].value as string, 'binary'));
        for (const general of san.value as Asn1[]) {
          if (general.type === 2) names.push(general.value as string);
        }
      }
    }
  }
  return names;
}
