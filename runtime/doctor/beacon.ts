/**
 * The beacon as the target side reaches it, replica by replica: every A-record of the name, a TCP connect to
 * each, and the TLS handshake with the certificate's names and dates. It only connects and closes: no announce
 * is sent, so no room is touched.
 */
import { connect as netConnect } from 'node:net';
import { checkServerIdentity, type PeerCertificate, connect as tlsConnect } from 'node:tls';
import { type BeaconTarget, parseBeaconAddress, systemResolver } from '../beacon/index.js';

export type Resolve = (host: string) => Promise<string[]>;

export interface ReplicaCertificate {
  readonly ip: string;
  readonly subjectAltNames?: string;
  readonly validTo?: string;
  /** Why the certificate is not good for the name (unknown CA, wrong name, expired), if it is not. */
  readonly problem?: string;
  readonly daysLeft?: number;
}

export function beaconTarget(address: string): BeaconTarget {
  return parseBeaconAddress(address);
}

export async function resolveReplicas(
  target: BeaconTarget,
  resolve: Resolve = systemResolver,
): Promise<string[]> {
  return [...new Set(await resolve(target.host))];
}

/** Resolves with undefined when the port answers, else the reason (refused, timed out, unreachable). */
export function tcpProbe(ip: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: ip, port });
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

/** The TLS handshake with one replica, verified against `caPem` (or the system roots) for the beacon's name. */
export function tlsProbe(
  target: BeaconTarget,
  ip: string,
  options: { caPem?: string; timeoutMs: number; now: Date },
): Promise<ReplicaCertificate> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: ip,
      port: target.port,
      servername: isIpLiteral(target.host) ? undefined : target.host,
      ca: options.caPem,
      // Verified below, so an expired or misnamed certificate is reported with its names and dates, not only refused.
      rejectUnauthorized: false,
      ALPNProtocols: target.door === 'wss' ? ['http/1.1'] : undefined,
    });
    const timer = setTimeout(
      () => finish({ ip, problem: `no TLS handshake within ${options.timeoutMs} ms` }),
      options.timeoutMs,
    );
    const finish = (result: ReplicaCertificate, handshakeDone = false) => {
      clearTimeout(timer);
      // After a handshake, end(): destroy() would discard this side's last handshake bytes, and the beacon would
      // count a client that gave up on its certificate (tls_aborted) at every doctor run.
      if (handshakeDone) socket.end();
      else socket.destroy();
      resolve(result);
    };
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate() as PeerCertificate;
      const validTo = cert.valid_to ? new Date(cert.valid_to) : undefined;
      const daysLeft = validTo
        ? Math.floor((validTo.getTime() - options.now.getTime()) / 86_400_000)
        : undefined;
      const nameProblem = checkServerIdentity(target.host, cert);
      const problem =
        validTo && validTo.getTime() <= options.now.getTime()
          ? `the certificate expired on ${validTo.toISOString()}`
          : nameProblem
            ? `the certificate does not name ${target.host} (${cert.subjectaltname ?? 'no subjectAltName'})`
            : socket.authorizationError
              ? `the certificate is not trusted: ${String(socket.authorizationError)}${options.caPem ? ' (checked against --beacon-ca)' : ' (checked against the system roots; pass --beacon-ca for a private CA)'}`
              : undefined;
      finish(
        {
          ip,
          subjectAltNames: cert.subjectaltname,
          validTo: validTo?.toISOString(),
          daysLeft,
          ...(problem ? { problem } : {}),
        },
        true,
      );
    });
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish({ ip, problem: `TLS handshake failed: ${err.code ?? err.message}` }),
    );
  });
}

function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}
