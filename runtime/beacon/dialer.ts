/**
 * Dialing a beacon address: every replica in parallel (dial-plan.ts decides which), the first pairing wins, and
 * through a proxy that refuses every replica address, once more by name. Shared by the broker and the bridge.
 */
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloudtaserError, type Logger } from '../core/index.js';
import {
  type BeaconDialPlan,
  type BeaconPlanOptions,
  everyReplicaRefused,
  fanOutKey,
  fanOutMemory,
  planBeaconDial,
  reportFanOut,
} from './dial-plan.js';
import { type ReplicaDialOptions, waitForPeer } from './replica-dial.js';

export interface BeaconDialOptions
  extends Omit<ReplicaDialOptions, 'ip' | 'target' | 'proxy'>,
    BeaconPlanOptions {
  /** The beacon address as in the Helm value (see parseBeaconAddress). */
  readonly address: string;
  /** Gets the one line when replica fan-out is reduced, and when it is whole again. @default silent */
  readonly logger?: Logger;
  /** Told each replica's result (`waiting`, `paired` or the CT_ code it failed with), for metrics. @default none */
  readonly onReplicaResult?: (ip: string, result: string) => void;
}

/**
 * Resolves every A/AAAA record of the name, dials all replicas in parallel and returns the first pairing;
 * the other attempts are closed. Rejects only when every replica failed (or the signal aborted).
 *
 * Through an HTTP proxy every replica is still dialled by address (CONNECT ip:port). When the proxy refuses every
 * one of them (a proxy that only tunnels to names, or one that cannot route to the addresses this host
 * resolved), or this host cannot resolve the name, the dialer degrades: it dials the name through the proxy and
 * logs once that the replica fan-out is reduced. It tries every replica again on the next dial.
 */
export async function dialBeacon(options: BeaconDialOptions): Promise<{ stream: Duplex; ip: string }> {
  const plan = await planBeaconDial(options.address, options);
  if (options.signal?.aborted) throw new CloudtaserError('CT_CANCELLED', 'dialing the beacon was cancelled');
  if (plan.reducedBecause !== undefined) reportFanOut(options.logger, plan, plan.reducedBecause);
  const everyReplica = await dialReplicas(options, plan, plan.replicas);
  if ('stream' in everyReplica) {
    if (plan.route.proxy && plan.reducedBecause === undefined) reportFanOut(options.logger, plan, undefined);
    return everyReplica;
  }
  // When nothing got through at all, the error says so; a later dial by name that works is news again.
  if (plan.reducedBecause !== undefined) fanOutMemory(options.logger).delete(fanOutKey(plan));
  const byNameHelps =
    plan.route.proxy !== undefined &&
    plan.reducedBecause === undefined &&
    !isIP(plan.target.host) &&
    !options.signal?.aborted &&
    everyReplica.errors.every((err) => err.code === 'CT_PROXY_REFUSED');
  if (!byNameHelps) throw pickDialError(everyReplica.errors, options.signal, options.address);
  reportFanOut(options.logger, plan, everyReplicaRefused(plan, everyReplica.errors));
  const byName = await dialReplicas(options, plan, [plan.target.host]);
  if ('stream' in byName) return byName;
  fanOutMemory(options.logger).delete(fanOutKey(plan));
  throw pickDialError(byName.errors, options.signal, options.address);
}

/** Dials every replica in parallel; the first pairing, or every replica's error. */
async function dialReplicas(
  options: BeaconDialOptions,
  plan: BeaconDialPlan,
  replicas: readonly string[],
): Promise<{ stream: Duplex; ip: string } | { errors: CloudtaserError[] }> {
  const attempts = new AbortController();
  const forwardAbort = () => attempts.abort();
  options.signal?.addEventListener('abort', forwardAbort, { once: true });
  let waitingReported = false;
  const onWaiting = () => {
    if (waitingReported) return;
    waitingReported = true;
    options.onWaiting?.();
  };
  try {
    return await new Promise((resolve) => {
      let winner = false;
      const errors: CloudtaserError[] = [];
      for (const ip of replicas) {
        waitForPeer({
          ...options,
          target: plan.target,
          ip,
          proxy: plan.route.proxy,
          signal: attempts.signal,
          onWaiting: () => {
            options.onReplicaResult?.(ip, 'waiting');
            onWaiting();
          },
        }).then(
          (stream) => {
            if (winner) {
              // Paired on a second replica in the same moment: close it so that peer dials again.
              stream.destroy();
              return;
            }
            options.onReplicaResult?.(ip, 'paired');
            winner = true;
            attempts.abort();
            resolve({ stream, ip });
          },
          (err: CloudtaserError) => {
            // The other replicas of a won (or cancelled) dial are closed by us: that says nothing about them.
            if (!attempts.signal.aborted) options.onReplicaResult?.(ip, err.code ?? 'CT_INTERNAL');
            errors.push(err);
            if (!winner && errors.length === replicas.length) resolve({ errors });
          },
        );
      }
    });
  } finally {
    options.signal?.removeEventListener('abort', forwardAbort);
  }
}

/** The most telling of the replicas' errors: the caller's cancel, then a beacon's stated reason, then unreachable. */
function pickDialError(
  errors: CloudtaserError[],
  signal: AbortSignal | undefined,
  address: string,
): CloudtaserError {
  if (signal?.aborted) return new CloudtaserError('CT_CANCELLED', 'dialing the beacon was cancelled');
  const stated = errors.find((err) => err.code !== 'CT_BEACON_UNREACHABLE' && err.code !== 'CT_CANCELLED');
  if (stated) return stated;
  if (errors.length === 1) return errors[0];
  return new CloudtaserError(
    'CT_BEACON_UNREACHABLE',
    `no replica of beacon ${address} could be reached: ${errors.map((err) => err.message).join('; ')}`,
    { cause: new AggregateError(errors) },
  );
}
