/**
 * Which brokers prove, at the beacon, that they belong in an operational room. The room's hash is the SHA-256 of
 * the cluster CA certificate, which is public (every injected pod has it): anyone may announce there as a broker,
 * and an outside hostile drill kept a restarting broker out for as long as it liked by holding the room's broker
 * places with anonymous connections. A broker that presents, in the outer TLS, its own certificate followed by
 * that CA proves it holds a key the cluster CA signed (the handshake proves the key; the signature and the room's
 * hash prove the CA), which nobody outside the cluster's bootstrap has. The beacon keeps no state for this: the
 * room's hash is the trust anchor. A proven broker takes a place an anonymous one holds, and bridges pair with it
 * first (pairing.ts); brokers that present nothing (before this change, and every init room) wait as before.
 */
import { createHash, type X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { issued, presentedChain, validityProblem } from './bridge-auth.js';

/** True when `socket`'s client certificate is valid now and issued by a CA certificate, sent with it, whose SHA-256 is `roomHash`. */
export function provesRoom(socket: TLSSocket | undefined, roomHash: string, now: Date = new Date()): boolean {
  if (!socket) return false;
  const [leaf, ...rest] = presentedChain(socket);
  if (!leaf || rest.length === 0 || validityProblem(leaf, now) !== undefined) return false;
  const ca = rest.find((certificate) => sha256Hex(certificate) === roomHash);
  return ca !== undefined && ca !== leaf && issued(ca, leaf);
}

function sha256Hex(certificate: X509Certificate): string {
  return createHash('sha256').update(certificate.raw).digest('hex');
}
