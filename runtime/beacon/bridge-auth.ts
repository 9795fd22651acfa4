/**
 * Which connections may wait as bridges: those whose outer TLS presented a client certificate issued by one of
 * the bridge CAs the beacon is configured with (one per OpenBao operator it serves), within its validity and
 * meant for client authentication. Brokers stay anonymous. The check runs at announce time against the CAs in
 * force then, so a CA removed by a reload stops admitting bridges at once, without state.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { parseCertificateBundle } from '../core/tls-files.js';

/** The bridge CAs in force, parsed once per (re)load. */
export interface BridgeCaSet {
  readonly certificates: readonly X509Certificate[];
  /** The CAs as one PEM bundle: what the outer TLS names in its certificate request. */
  readonly pem: string;
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE_OID = '2.5.29.37.0';
/** Intermediates followed between a bridge leaf and a configured CA (cert-manager issuers rarely use more than one). */
const MAX_CHAIN_DEPTH = 4;

/**
 * Parses the bridge CA PEMs (each may be a bundle); every certificate must be a CA. No certificate at all is
 * allowed and admits no bridge: a fresh chart install mounts an empty ConfigMap until the operator's CA is set,
 * and the beacon then serves brokers and refuses every bridge, saying why, instead of failing to start.
 */
export function loadBridgeCas(pems: readonly string[]): BridgeCaSet {
  const certificates = pems.flatMap((pem, index) =>
    pem.trim() === '' ? [] : parseCertificateBundle(pem, `bridge CA ${index + 1}`),
  );
  for (const certificate of certificates) {
    if (!certificate.ca)
      throw new Error(`bridge CA "${certificate.subject.replace(/\n/g, ', ')}" is not a CA certificate`);
  }
  return { certificates, pem: certificates.map((c) => c.toString()).join('') };
}

/**
 * Why the connection may not wait as a bridge, or undefined when its client certificate chains to one of `cas`
 * and is valid now. `socket` is the outer TLS socket (TLS or WebSocket door); a plain-door connection has none.
 */
export function bridgeRefusal(
  socket: TLSSocket | undefined,
  cas: BridgeCaSet,
  now: Date = new Date(),
): string | undefined {
  const admission = bridgeAdmission(socket, cas, now);
  return 'refusal' in admission ? admission.refusal : undefined;
}

/**
 * bridgeRefusal, or which configured CA admitted the connection (its SHA-256 fingerprint): the bridge's operator,
 * so that the operators sharing a beacon share each room's places fairly (pairing.ts).
 */
export function bridgeAdmission(
  socket: TLSSocket | undefined,
  cas: BridgeCaSet,
  now: Date = new Date(),
): { readonly refusal: string } | { readonly admittedBy: string } {
  if (cas.certificates.length === 0)
    return {
      refusal:
        'this beacon trusts no bridge CA yet: give it the CA from `cloudtaser-cli source beacon-ca` (Helm beacon.bridgeAuth.caPems)',
    };
  if (!socket)
    return { refusal: 'the plain door carries no client certificate; bridges must use the TLS or wss door' };
  const chain = presentedChain(socket);
  const leaf = chain[0];
  if (!leaf)
    return {
      refusal: 'no client certificate was presented; a bridge needs one from a bridge CA this beacon trusts',
    };
  const validity = validityProblem(leaf, now);
  if (validity) return { refusal: `the client certificate ${validity}` };
  const usages = leaf.keyUsage;
  if (usages && !usages.includes(CLIENT_AUTH_OID) && !usages.includes(ANY_EXTENDED_KEY_USAGE_OID))
    return { refusal: 'the client certificate is not meant for client authentication (extended key usage)' };
  let current = leaf;
  for (let depth = 1; depth <= MAX_CHAIN_DEPTH; depth++) {
    const admitting = cas.certificates.find(
      (ca) => issued(ca, current) && validityProblem(ca, now) === undefined,
    );
    if (admitting) return { admittedBy: admitting.fingerprint256 };
    const next = chain[depth];
    if (!next?.ca || !issued(next, current) || validityProblem(next, now) !== undefined) break;
    current = next;
  }
  return { refusal: 'the client certificate is not issued by a bridge CA this beacon trusts' };
}

/** The leaf first, then whatever intermediates the client sent, as X509Certificates. */
export function presentedChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let detail = socket.getPeerCertificate(true) as
    | (ReturnType<TLSSocket['getPeerCertificate']> & { issuerCertificate?: unknown })
    | undefined;
  const seen = new Set<string>();
  while (detail?.raw && chain.length <= MAX_CHAIN_DEPTH) {
    const key = detail.raw.toString('base64');
    if (seen.has(key)) break; // the self-signed root points at itself
    seen.add(key);
    try {
      chain.push(new X509Certificate(detail.raw));
    } catch {
      break;
    }
    detail = detail.issuerCertificate as typeof detail;
  }
  return chain;
}

export function issued(issuer: X509Certificate, subject: X509Certificate): boolean {
  try {
    return subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

export function validityProblem(certificate: X509Certificate, now: Date): string | undefined {
  if (now < new Date(certificate.validFrom)) return `is not valid before ${certificate.validFrom}`;
  if (now > new Date(certificate.validTo)) return `expired on ${certificate.validTo}`;
  return undefined;
}
