/**
 * The broker: runs in the target cluster, dials out only. Reads the cluster fingerprint, bootstraps through
 * the init room, then holds the operational tunnel, reconnecting on its own. Nothing is written to disk.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { attestationAudience } from '../attestation/index.js';
import { type BeaconClientCertificate, dialBeacon, logBeaconRoutes } from '../beacon/index.js';
import { backoffCeiling, jitteredInterval } from '../core/backoff.js';
import { CloudtaserError, type ErrorCode, isCloudtaserError } from '../core/errors.js';
import {
  fingerprintPrefix,
  hashPrefix,
  initHash,
  operationalHash,
  redactIdentifiers,
} from '../core/hashes.js';
import { linkSignal } from '../core/linked-signal.js';
import { moduleLogger } from '../core/log.js';
import { createLogSummarizer } from '../core/log-summary.js';
import { parseFingerprint } from '../core/rules.js';
import { type SecretMigrator, startSecretMigrator } from '../migration/migrator.js';
import { generateKeyPair, type KeyPair, privateKeyToPem } from '../pki/index.js';
import { proxySettingFromEnvironment } from '../proxy/settings.js';
import {
  createBackoff,
  type HealthServer,
  sleep,
  type TunnelHandler,
  type TunnelMux,
  type TunnelReply,
} from '../tunnel/index.js';
import { isTunnelMoveRequest } from '../tunnel/move.js';
import { acceptTunnel } from '../tunnel/session.js';
import { type BrokerCredentials, bootstrapBroker } from './bootstrap.js';
import { startBrokerHealth } from './health.js';
import type { BrokerMetrics } from './metrics.js';
import {
  ATTESTATION_TOKEN_SECONDS,
  type BrokerHandle,
  type BrokerOptions,
  type BrokerTiming,
  DEFAULT_BROKER_TIMING,
} from './options.js';
import { type BrokerPodApi, brokerPodApi } from './pod-api.js';
import { runCertificateRenewal } from './renewal.js';
import type { BrokerPhase, BrokerStatus } from './status.js';
import {
  isNamespaceRequest,
  isTokenReviewRequest,
  serveNamespaceRead,
  serveTokenReview,
  type TokenReviewOutcomes,
} from './tokenreview.js';
import { memoryTrustRecord } from './trust-record.js';
import { type BrokerWebhook, startBrokerWebhook } from './webhook.js';

// The surface (options, timing, handle) lives in options.ts; importers of broker.js keep finding it here.
export * from './options.js';

export async function startBroker(options: BrokerOptions): Promise<BrokerHandle> {
  if (options.beacons.length === 0)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', 'the broker needs at least one --beacon address');
  const pin = options.caSha256?.trim().toLowerCase();
  const trustRecord = options.trustRecord ?? memoryTrustRecord();
  if (pin !== undefined && !/^[0-9a-f]{64}$/.test(pin)) {
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      '--ca-sha256 must be 64 hex characters (the operational hash `source register` prints)',
    );
  }
  const timing: BrokerTiming = { ...DEFAULT_BROKER_TIMING, ...definedOnly(options.timing ?? {}) };
  // Rebound with the cluster's fingerprint prefix once it is read, so its lines match the bridge's for that cluster.
  let log = moduleLogger(options.logger, 'broker');
  const beaconProxy = options.beaconProxy ?? proxySettingFromEnvironment();
  logBeaconRoutes(log, options.beacons, beaconProxy);
  const stop = new AbortController();
  /** After SIGTERM (drain): not ready, still serving until close. */
  let draining = false;
  const backoff = createBackoff({ initialMs: timing.backoffInitialMs, maxMs: timing.backoffMaxMs });
  // One key per process: retries reuse it, and it never leaves memory.
  const keyPair = generateKeyPair();
  const podApiKeyPair = options.podApi ? generateKeyPair() : undefined;
  if (options.podApi && options.podApi.dnsNames.length === 0)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'the pod API needs at least one DNS name (--pod-api-dns-name)',
    );
  if (options.migration && !options.kube)
    throw new CloudtaserError('CT_INVALID_ARGUMENT', 'migration needs Kubernetes API access (kube)');
  /**
   * Who can have replaced this broker: with attestation the fingerprint alone is refused, so only someone who can
   * get tokens of the operator's service account (an outside drill read "someone who knows the fingerprint" there).
   */
  const whoCouldHoldIt = options.attestation
    ? "someone who can get tokens of this operator's service account (a second operator, or a cluster admin)"
    : 'someone who knows the fingerprint';
  const attestationKube = options.attestation
    ? (options.attestation.kube ?? (options.kube?.createServiceAccountToken ? options.kube : undefined))
    : undefined;
  if (options.attestation && !attestationKube?.createServiceAccountToken)
    throw new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      'attestation needs Kubernetes API access that can create service-account tokens (kube)',
    );
  let status: BrokerStatus = {
    phase: 'starting',
    reason: 'reading the cluster fingerprint',
    since: new Date().toISOString(),
    ...(options.podName ? { pod: options.podName } : {}),
  };
  let liveTunnel: TunnelMux | undefined;
  const watchers = new Set<() => void>();

  const setStatus = (phase: BrokerPhase, reason: string, extra: Partial<BrokerStatus> = {}) => {
    const changed = phase !== status.phase;
    status = {
      ...status,
      ...extra,
      phase,
      reason,
      since: changed ? new Date().toISOString() : status.since,
      ...(phase === 'operational' ? {} : { tunnel: undefined, beaconIp: undefined }),
    };
    // Rejected needs someone to act (a re-arm, fixed attestation settings): at warn, once per change of phase.
    if (changed)
      log[phase === 'rejected' ? 'warn' : 'info'](
        { event: 'broker.phase', phase, reason, code: status.lastErrorCode },
        `broker ${phase}`,
      );
    for (const wake of [...watchers]) wake();
  };

  const isConnected = () => liveTunnel !== undefined && !liveTunnel.closed;
  /** A tunnel new requests may go on: connected, and the bridge has not said it is closing. */
  const usable = () => isConnected() && !liveTunnel!.draining;
  const metrics = options.metrics;
  metrics?.track({
    phase: () => status.phase,
    tunnelUp: isConnected,
    migration: () => migrator?.status(),
  });
  const connectedTunnel = () => (usable() ? liveTunnel : undefined);
  /** The next live tunnel other than `previous` (the broker reconnecting), or undefined once `signal` aborts. */
  const nextTunnel = (previous: TunnelMux | undefined, signal: AbortSignal) =>
    new Promise<TunnelMux | undefined>((resolve) => {
      const finish = (tunnel: TunnelMux | undefined) => {
        watchers.delete(check);
        signal.removeEventListener('abort', onAbort);
        resolve(tunnel);
      };
      const check = () => {
        const tunnel = connectedTunnel();
        if (tunnel && tunnel !== previous) finish(tunnel);
      };
      const onAbort = () => finish(undefined);
      if (signal.aborted) return resolve(undefined);
      watchers.add(check);
      signal.addEventListener('abort', onAbort, { once: true });
      check();
    });
  // Declared before anything can ask for the status (the health server answers while startup still runs).
  let migrator: SecretMigrator | undefined;
  let webhook: BrokerWebhook | undefined;
  const podApi: BrokerPodApi | undefined = options.podApi
    ? brokerPodApi(options.podApi, {
        tunnel: connectedTunnel,
        nextTunnel,
        refusal: () => refusalOf(status),
        // Replaced, and dialing again on its schedule (an attested broker may win the cluster back): pods still
        // wait for a tunnel first, then hear why there is none.
        noTunnelReason: () =>
          status.phase !== 'operational' && status.lastTunnelClose?.code === 'CT_BROKER_REPLACED'
            ? { code: 'CT_BROKER_REPLACED', reason: status.reason }
            : undefined,
        // Declared below with the TokenReview outcomes; only read once pods send requests.
        tokenReviewFailures: () => reviewFailures,
        metrics,
        logger: log,
      })
    : undefined;
  const currentStatus = (): BrokerStatus => {
    const podApiEndpoint = status.phase === 'operational' ? podApi?.endpoint() : undefined;
    const caBundle = webhook?.caBundleStatus();
    return {
      ...status,
      ...(migrator ? { migration: migrator.status() } : {}),
      reason: redactIdentifiers(status.reason),
      ...(status.lastError ? { lastError: redactIdentifiers(status.lastError) } : {}),
      ...(podApiEndpoint ? { podApiUrl: podApiEndpoint.url, podApiCaPem: podApiEndpoint.caPem } : {}),
      ...(webhook?.caPem ? { webhookCaPem: webhook.caPem } : {}),
      ...(caBundle ? { webhookCaBundle: caBundle } : {}),
      ...(tokenReview
        ? {
            tokenReview: tokenReview.lastError
              ? { ...tokenReview, lastError: redactIdentifiers(tokenReview.lastError) }
              : tokenReview,
          }
        : {}),
    };
  };

  // Every pod login is a TokenReview: a failure is logged once per code and minute, and /status keeps its state.
  let reviewSummary = createLogSummarizer(log, { summaryEvent: 'broker.tokenreview_failures_summary' });
  // A failed attempt (beacon down, API server down at start) is retried every few seconds for as long as it lasts:
  // a line per code and minute, the rest counted; /status always has the latest.
  let retrySummary = createLogSummarizer(log, { summaryEvent: 'broker.retry_summary' });
  let tokenReview: BrokerStatus['tokenReview'];
  /**
   * For the pod API: TokenReviews that failed (not refused tokens: the API server or our access failed), and every
   * TokenReview or namespace read OpenBao's Kubernetes auth asked this broker for, through any tunnel.
   */
  const reviewFailures = { count: 0, code: undefined as ErrorCode | undefined, asked: 0 };
  const reviewOutcomes: TokenReviewOutcomes = {
    answered() {
      if (tokenReview?.state === 'failing')
        log.info(
          { event: 'broker.tokenreview_recovered', after: tokenReview.lastErrorCode },
          'TokenReviews work again',
        );
      if (tokenReview?.state !== 'ok') tokenReview = { state: 'ok', since: new Date().toISOString() };
    },
    failed(error) {
      reviewFailures.count++;
      reviewFailures.code = error.code;
      reviewSummary.warn(
        error.code,
        { event: 'broker.tokenreview_failed', code: error.code, reason: error.message },
        error.code === 'CT_KUBE_FORBIDDEN'
          ? "TokenReview against the cluster was refused: pod logins fail until the broker's service account is bound to system:auth-delegator (the chart's ClusterRoleBinding)"
          : 'TokenReview against the cluster failed: pod logins fail until it works',
      );
      tokenReview = {
        state: 'failing',
        since: tokenReview?.state === 'failing' ? tokenReview.since : new Date().toISOString(),
        lastErrorCode: error.code,
        lastError: error.message,
      };
    },
  };

  const brokerHandler: TunnelHandler = (request, context) => {
    if (isTokenReviewRequest(request)) {
      reviewFailures.asked++;
      return countReview(
        metrics,
        'review',
        serveTokenReview(options.kube, request, log, context.signal, reviewOutcomes),
      );
    }
    if (isNamespaceRequest(request)) {
      reviewFailures.asked++;
      return countReview(
        metrics,
        'namespace',
        serveNamespaceRead(options.kube, request, log, context.signal),
      );
    }
    if (options.handler) return options.handler(request, context);
    return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };
  };

  let health: HealthServer | undefined;
  // Started in this order; a step that fails closes what the earlier ones opened, so nothing keeps listening.
  try {
    // First, before any bootstrap: a broker that could not serve pods must not take the cluster over from one
    // that can (an outside drill: a port already in use failed only after the bootstrap, in a retry loop, and the
    // healthy broker it replaced stayed locked out).
    await podApi?.reserve();
    if (options.webhook) {
      webhook = await startBrokerWebhook(options.webhook, {
        fallbackDnsNames: options.podApi?.dnsNames,
        kube: options.kube,
        state: () => {
          const endpoint = podApi?.endpoint();
          const refused = refusalOf(status);
          return {
            connected: isConnected(),
            podApiUrl: endpoint?.url,
            podApiCaPem: endpoint?.caPem,
            bootstrapRefused: refused,
          };
        },
        metrics,
        logger: log,
      });
    }
    migrator =
      options.migration && options.kube
        ? startSecretMigrator({
            kube: options.kube,
            tunnel: connectedTunnel,
            namespaces: options.migration.namespaces,
            intervalMs: options.migration.intervalMs,
            afterVerifiedWrite: options.migration.afterVerifiedWrite,
            onOutcome: metrics ? (outcome, code) => metrics.migration(outcome, code) : undefined,
            logger: log,
          })
        : undefined;
    if (options.health) {
      health = await startBrokerHealth(options.health, {
        status: currentStatus,
        tunnel: () => liveTunnel,
        ready: () => !stop.signal.aborted && !draining,
        metrics,
        logger: log,
      });
    }
  } catch (err) {
    stop.abort();
    await migrator?.close();
    await webhook?.close();
    await podApi?.close();
    throw err;
  }

  /** One pairing in `hash`'s room within pairTimeoutMs; `until` abandons it (a move whose tunnel closed meanwhile). */
  const dial = async (
    hash: string,
    room: 'init' | 'operational',
    until?: AbortSignal,
    clientCertificate?: BeaconClientCertificate,
  ) => {
    const attempt = linkSignal([stop.signal, until], timing.pairTimeoutMs);
    try {
      // Every address, every A-record, in parallel: the first pairing wins and the rest are closed.
      const dials = options.beacons.map((address) =>
        dialBeacon({
          address,
          role: 'broker',
          hash,
          caCertPem: options.beaconCaPem,
          clientCertificate,
          resolve: options.resolve,
          proxy: beaconProxy,
          signal: attempt.signal,
          logger: log,
          onReplicaResult: metrics ? (ip, result) => metrics.beaconDial(ip, result) : undefined,
        }),
      );
      const winner = await firstFulfilled(dials);
      attempt.abort();
      for (const other of dials)
        void other.then(
          (paired) => paired !== winner && paired.stream.destroy(),
          () => undefined,
        );
      const stream = options.observePairedStream
        ? options.observePairedStream(winner.stream, room)
        : winner.stream;
      return { stream, ip: winner.ip };
    } catch (err) {
      if (attempt.timedOut) {
        throw new CloudtaserError(
          'CT_BEACON_UNREACHABLE',
          `no pairing in the ${room} room within ${timing.pairTimeoutMs} ms; dialing again`,
          { cause: err },
        );
      }
      throw err;
    } finally {
      attempt.dispose();
    }
  };

  /** A fresh token per attempt, bound to both our keys; it is minted before dialing so a pairing is not wasted. */
  const requestAttestationToken = async (): Promise<string | undefined> => {
    if (!options.attestation || !attestationKube?.createServiceAccountToken) return undefined;
    const { namespace, name } = options.attestation.serviceAccount;
    const audiences = [keyPair, ...(podApiKeyPair ? [podApiKeyPair] : [])].map((pair) =>
      attestationAudience(publicKeySha256(pair)),
    );
    try {
      const issued = await attestationKube.createServiceAccountToken(
        namespace,
        name,
        { audiences, expirationSeconds: ATTESTATION_TOKEN_SECONDS },
        { signal: stop.signal },
      );
      return issued.token;
    } catch (err) {
      const error = toCloudtaserError(err);
      throw new CloudtaserError(
        error.code,
        `could not request an attestation token for service account ${namespace}/${name}: ${error.message}; the broker needs \`create serviceaccounts/token\` on its own service account`,
        { cause: err },
      );
    }
  };

  const bootstrap = async (fingerprint: string, caPin: string | undefined): Promise<BrokerCredentials> => {
    const attestationToken = await requestAttestationToken();
    const paired = await dial(initHash(fingerprint), 'init');
    log.info({ event: 'broker.paired', room: 'init', beaconIp: paired.ip }, 'paired in the init room');
    const bootstrapped = bootstrapBroker(paired.stream, {
      fingerprint,
      caSha256: caPin,
      caPinSource: pin ? 'flag' : 'record',
      stepTimeoutMs: timing.stepTimeoutMs,
      signal: stop.signal,
      logger: log,
      keyPair,
      attestationToken,
      // Trust on first use is recorded before it is used: nothing about the cluster (fingerprint, CSR, token)
      // goes to a bridge whose CA is neither pinned nor recorded, so a bootstrap the bridge spends always leaves
      // the record behind (a restart then meets the real bridge's "already initialized" pinned, not open).
      // An admin pin goes into the record only once a bridge presented that very CA: a mistyped pin (refused by
      // every bridge) must not replace a good record, or removing the typo would leave the cluster refusing its CA.
      ...(caPin === undefined
        ? { beforeRequest: recordFirstContactCa }
        : pin && options.trustRecord
          ? { beforeRequest: confirmAdminPin }
          : {}),
      ...(options.podApi && podApiKeyPair
        ? { podApi: { dnsNames: options.podApi.dnsNames, keyPair: podApiKeyPair } }
        : {}),
    });
    if (!metrics) return bootstrapped;
    try {
      const credentials = await bootstrapped;
      metrics.bootstrap('signed');
      return credentials;
    } catch (err) {
      const error = toCloudtaserError(err);
      const refusal = isCloudtaserError(error, 'CT_BOOTSTRAP_REFUSED') ? error.details.refusal : undefined;
      if (error.code !== 'CT_CANCELLED') metrics.bootstrap(refusal ?? error.code);
      throw err;
    }
  };

  /** One object per credentials, so the dialer builds its TLS context once for them (see replica-dial.ts). */
  const beaconProofs = new WeakMap<BrokerCredentials, BeaconClientCertificate>();
  const beaconProofOf = (credentials: BrokerCredentials): BeaconClientCertificate => {
    let proof = beaconProofs.get(credentials);
    if (!proof) {
      proof = {
        certPem: `${credentials.brokerCertPem.trimEnd()}\n${credentials.caCertPem.trimEnd()}\n`,
        keyPem: privateKeyToPem(credentials.privateKey),
      };
      beaconProofs.set(credentials, proof);
    }
    return proof;
  };

  /** One operational tunnel; `until` abandons the attempt (a move whose tunnel closed meanwhile). */
  const connect = async (credentials: BrokerCredentials, until?: AbortSignal): Promise<OperationalTunnel> => {
    const room = operationalHash(credentials.caCertDer);
    // Its certificate and the cluster CA in the outer TLS prove to the beacon that it belongs in the room, whose
    // hash is public: a proven broker takes a place anonymous announces hold (beacon/broker-proof.ts). The key
    // proves itself in the handshake and stays here, as in the tunnel's own TLS.
    const paired = await dial(room, 'operational', until, beaconProofOf(credentials));
    let mux: TunnelMux | undefined;
    const handshake = linkSignal([stop.signal, until]);
    try {
      const session = await acceptTunnel(paired.stream, {
        caCertPem: credentials.caCertPem,
        certPem: credentials.brokerCertPem,
        keyPem: privateKeyToPem(credentials.privateKey),
        handshakeTimeoutMs: timing.stepTimeoutMs,
        limits: options.tunnelLimits,
        handler: (request, context) =>
          isTunnelMoveRequest(request) ? moves.requested(mux) : brokerHandler(request, context),
        signal: handshake.signal,
        logger: log,
      });
      mux = session.mux;
      return { mux, ip: paired.ip };
    } finally {
      handshake.dispose();
    }
  };

  /**
   * Make before break. The bridge asks for a move (TUNNEL_MOVE_PATH) when the tunnel has to go: the beacon replica
   * it runs through drains, the bridge replica closes, or its shard moves to another bridge replica. The broker
   * dials a new tunnel while the current one keeps serving, sends pods to the new one once it is up, and closes the
   * old one once nothing is in flight on it. A redial that fails (the replica the bridge thought was there died
   * too, the network to it is cut) changes nothing: the old tunnel serves until it ends, and the broker tries again
   * after its backoff. Only the live tunnel can ask, one move runs at a time, and a move starts after a jittered
   * pause (as a redial does) and at most once per backoff ceiling, so a bridge asking in a loop (it holds the
   * cluster's bridge certificate, but still) costs one dial per few seconds. A new tunnel is an ordinary
   * operational pairing: the same mutual TLS against the cluster CA, so a stranger waiting in the room gets
   * nothing and the broker keeps the tunnel it has.
   */
  const moves = (() => {
    let wanted = false;
    let moving = false;
    let wake: (() => void) | undefined;
    let lastStartedAt = Number.NEGATIVE_INFINITY;
    const reply = (status: number, body: string): TunnelReply => ({
      status,
      headers: { 'content-type': 'text/plain' },
      body,
    });
    return {
      requested(mux: TunnelMux | undefined): TunnelReply {
        // Shutting down (SIGTERM): a new tunnel would only be closed again; the bridge closes this one once idle.
        if (stop.signal.aborted || draining) return reply(503, 'the broker is shutting down');
        if (mux === undefined || mux !== liveTunnel || mux.draining)
          return reply(409, 'this tunnel is not the one the broker serves on');
        // Asked again while a move runs (a second notice of the same drain): that move answers both.
        if (!moving) wanted = true;
        wake?.();
        return reply(202, 'opening a new tunnel; this one serves until it is up');
      },
      /** Resolves when a move was asked for and may start now, or once `signal` aborts. */
      async next(signal: AbortSignal): Promise<void> {
        if (!wanted && !signal.aborted)
          await new Promise<void>((resolve) => {
            wake = resolve;
            signal.addEventListener('abort', () => resolve(), { once: true });
          });
        wake = undefined;
        // A draining replica's bridge asks every broker through it at once: a jittered start spreads their dials
        // (and the bridge's handshakes) as the pause before a redial does, at no cost, since the tunnel serves.
        const paceMs = Math.max(
          lastStartedAt + timing.backoffMaxMs - performance.now(),
          jitteredInterval(timing.backoffInitialMs),
        );
        if (paceMs > 0) await sleep(paceMs, signal);
        if (signal.aborted) return;
        wanted = false;
        moving = true;
        lastStartedAt = performance.now();
      },
      finished() {
        moving = false;
      },
    };
  })();
  /** Tunnels a move left behind, closing once idle; the broker's close waits for them. */
  const movedFrom = new Set<Promise<void>>();

  /**
   * Serves on `first`, and on each tunnel a move puts in its place, until the live one closes; resolves with why
   * it closed.
   */
  const holdTunnel = async (first: OperationalTunnel): Promise<CloudtaserError> => {
    let current = first;
    for (;;) {
      const closed = linkSignal([stop.signal]);
      void current.mux.done.then(() => closed.abort());
      try {
        await moves.next(closed.signal);
        if (closed.signal.aborted) return await current.mux.done;
        const next = await moveFrom(current, closed.signal).finally(() => moves.finished());
        if (!next) continue;
        const previous = current;
        current = next;
        liveTunnel = next.mux;
        metrics?.tunnelOpened();
        metrics?.tunnelMove('moved');
        setStatus('operational', 'mutual TLS tunnel to the bridge is up', {
          beaconIp: next.ip,
          tunnel: { since: new Date().toISOString() },
        });
        log.info(
          { event: 'broker.tunnel_moved', fromBeaconIp: previous.ip, toBeaconIp: next.ip },
          'moved to a new tunnel; the old one closes once nothing is in flight on it',
        );
        const closing = previous.mux
          .closeWhenIdle('the broker moved to a new tunnel', timing.closeGraceMs)
          .then(async () => {
            metrics?.tunnelClosed(closeCodeOf(await previous.mux.done));
            movedFrom.delete(closing);
          });
        movedFrom.add(closing);
      } finally {
        closed.dispose();
      }
    }
  };

  /** Dials until a new tunnel is up; undefined once `current` closed (the run loop redials as after any close). */
  const moveFrom = async (
    current: OperationalTunnel,
    closed: AbortSignal,
  ): Promise<OperationalTunnel | undefined> => {
    const retry = createBackoff({ initialMs: timing.backoffInitialMs, maxMs: timing.backoffMaxMs });
    log.info(
      { event: 'broker.tunnel_moving', beaconIp: current.ip },
      'the bridge asked for a new tunnel; dialing while this one serves',
    );
    while (!closed.aborted) {
      try {
        // The credentials in use at each attempt: a renewal may have replaced them meanwhile.
        return await connect(credentials!, closed);
      } catch (err) {
        if (closed.aborted) return undefined;
        const error = toCloudtaserError(err);
        const delay = retry.next();
        metrics?.tunnelMove(error.code);
        retrySummary.warn(
          `move|${error.code}`,
          { event: 'broker.move_failed', code: error.code, delayMs: delay, reason: error.message },
          'could not open the new tunnel to move to; the current one keeps serving, trying again',
        );
        await sleep(delay, closed);
      }
    }
    return undefined;
  };

  /**
   * The pin for the next init bootstrap: the admin's, else the trust record's, else the CA of the credentials in
   * hand (a re-bootstrap never moves to another CA on its own). Undefined only for the very first contact of a
   * cluster with no record: trust on first use, recorded before it is used. A record that cannot be read counts
   * as "unknown", never as "empty".
   */
  const pinForBootstrap = async (credentials: BrokerCredentials | undefined): Promise<string | undefined> => {
    if (pin) return pin;
    const held = credentials ? operationalHash(credentials.caCertDer) : undefined;
    try {
      return (await trustRecord.read(stop.signal)).caSha256 ?? held;
    } catch (err) {
      if (held) return held;
      throw err;
    }
  };

  /**
   * Records the CA a bridge presents at first contact (empty record, no pin), before the broker sends it anything.
   * A record that cannot be written ends the exchange with nothing sent, so the one-time bootstrap stays unspent.
   */
  const recordFirstContactCa = async (presentedCa: X509Certificate): Promise<void> => {
    const hash = operationalHash(presentedCa.raw);
    try {
      await recordCa(hash);
    } catch (err) {
      if (isCloudtaserError(err, 'CT_PKI_CA_PIN_MISMATCH') || isCloudtaserError(err, 'CT_CANCELLED'))
        throw err;
      const error = toCloudtaserError(err);
      throw new CloudtaserError(
        error.code,
        `a bridge presented cluster CA ${hash.slice(0, 8)}… at first contact, but the broker cannot record it, so it sent nothing and stays closed: ${error.message}`,
        { cause: err },
      );
    }
  };

  const recordCa = async (hash: string): Promise<void> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const record = await trustRecord.read(stop.signal);
      if (record.caSha256 === hash) return;
      if (record.caSha256 !== undefined) {
        throw new CloudtaserError(
          'CT_PKI_CA_PIN_MISMATCH',
          `the bridge offered cluster CA ${hash.slice(0, 8)}… but the trust record ${trustRecord.description} pins ${record.caSha256.slice(0, 8)}…; refusing it and bootstrapping again against the record`,
        );
      }
      try {
        await trustRecord.write(
          { caSha256: hash, recordedBy: 'broker (first bootstrap)' },
          record.version,
          stop.signal,
        );
        log.info(
          {
            event: 'broker.trust_recorded',
            caSha256Prefix: hash.slice(0, 8),
            record: trustRecord.description,
          },
          'recorded the cluster CA presented at first contact, before sending the bridge anything; from now on the broker accepts only this CA',
        );
        return;
      } catch (err) {
        if (!isCloudtaserError(err, 'CT_KUBE_CONFLICT')) throw err;
      }
    }
    throw new CloudtaserError(
      'CT_TRUST_RECORD_UNAVAILABLE',
      `the trust record ${trustRecord.description} kept changing while the broker recorded its CA; retrying`,
    );
  };

  /** An admin pin replaces whatever the record holds, so that removing the pin later keeps this CA. */
  const writeAdminPin = async (adminPin: string): Promise<void> => {
    try {
      const record = await trustRecord.read(stop.signal);
      if (record.caSha256 === adminPin) return;
      await trustRecord.write(
        { caSha256: adminPin, recordedBy: 'admin pin (--ca-sha256, operator.broker.trust.caSha256)' },
        record.version,
        stop.signal,
      );
      if (record.caSha256 !== undefined)
        log.warn(
          {
            event: 'broker.trust_record_replaced',
            previousCaSha256Prefix: record.caSha256.slice(0, 8),
            pinnedCaSha256Prefix: adminPin.slice(0, 8),
            record: trustRecord.description,
          },
          'the admin pin replaced a different CA in the trust record; the broker accepts only the pinned CA',
        );
      else
        log.info(
          {
            event: 'broker.trust_recorded',
            caSha256Prefix: adminPin.slice(0, 8),
            record: trustRecord.description,
          },
          'recorded the admin pin in the trust record',
        );
    } catch (err) {
      // The pin itself protects this broker; the record only matters once the pin is removed.
      log.warn(
        {
          event: 'broker.trust_record_write_failed',
          code: toCloudtaserError(err).code,
          reason: (err as Error).message,
        },
        'could not write the admin pin into the trust record; the pin still applies',
      );
    }
  };
  let adminPinRecorded = false;
  /** The init room's bridge presented a CA matching the admin pin (bootstrapBroker checked it): record it once. */
  const confirmAdminPin = async (presentedCa: X509Certificate): Promise<void> => {
    if (adminPinRecorded || !pin || operationalHash(presentedCa.raw) !== pin) return;
    adminPinRecorded = true;
    void writeAdminPin(pin);
  };
  if (!options.trustRecord && !pin)
    log.warn(
      { event: 'broker.trust_record_memory' },
      'no trust record is configured: the first CA accepted is pinned for this process only, and a restarted broker trusts the first CA it meets again',
    );

  /** The certificates in use: from the last bootstrap, or the renewal after it (in memory only). */
  let credentials: BrokerCredentials | undefined;

  const run = async () => {
    let fingerprint: string | undefined;
    let operationalMisses = 0;
    /** When the bridge said a newer bootstrap replaced this broker (CT_BROKER_REPLACED), until one succeeds. */
    let replacedAt: string | undefined;
    /**
     * While replaced: when the init room was last tried (first: the replacement). The operational room refuses a
     * replaced broker's certificate in ways that count no miss (a handshake the bridge breaks off, a tunnel it
     * closes at once), so without this a broker whose replacer died stayed locked out until restarted (an outside
     * drill). Every rejectedRetryMs it asks the init room: an attested broker bootstraps again (each replacement
     * is a CT_BROKER_REPLACED warning on both sides), an unattested one is refused and shows who replaced it.
     */
    let replacedRetryFrom = 0;
    /**
     * Replacements in a row, and the pause before the init room is asked again: rejectedRetryMs, doubled at each
     * replacement up to an hour. Two live attested brokers of one cluster (two operator replicas, a stale pod) took
     * it from each other every minute without end, each time an OpenBao write, a dropped tunnel and a takeover
     * warning nobody would read any more (a security review); they now settle within hours. Forgotten once this
     * broker held the cluster for an hour.
     */
    let replacements = 0;
    let bootstrappedAt: number | undefined;
    /** Set by CT_REARMED: go to the init room until a bootstrap is signed or refused, whatever fails meanwhile. */
    let rearmPending = false;
    while (!stop.signal.aborted) {
      try {
        if (!fingerprint) {
          fingerprint = parseFingerprint(
            typeof options.fingerprint === 'string'
              ? options.fingerprint
              : await options.fingerprint(stop.signal),
          );
          log = log.child({ fingerprintPrefix: fingerprintPrefix(fingerprint) });
          reviewSummary.close();
          reviewSummary = createLogSummarizer(log, { summaryEvent: 'broker.tokenreview_failures_summary' });
          retrySummary.close();
          retrySummary = createLogSummarizer(log, { summaryEvent: 'broker.retry_summary' });
          setStatus('bootstrapping', 'fingerprint read; dialing the beacon init room');
        }
        const replacedRetryDue =
          replacedAt !== undefined &&
          Date.now() - replacedRetryFrom >=
            backoffCeiling(replacements - 1, {
              initialMs: timing.rejectedRetryMs,
              maxMs: Math.max(timing.rejectedRetryMs, MAX_REPLACED_RETRY_MS),
            });
        const tryInit =
          !credentials ||
          rearmPending ||
          operationalMisses >= timing.reBootstrapAfterFailures ||
          replacedRetryDue;
        if (tryInit) {
          if (replacedAt) replacedRetryFrom = Date.now();
          if (!credentials && status.phase !== 'rejected')
            setStatus(
              'bootstrapping',
              status.lastError
                ? `waiting for the bridge in the init room; the last attempt failed: ${status.lastError}`
                : 'waiting for the bridge in the init room',
            );
          const caPin = await pinForBootstrap(credentials);
          try {
            const fresh = await bootstrap(fingerprint, caPin);
            credentials = fresh;
            bootstrappedAt = Date.now();
            const certificate = presentedCertificate(fresh.brokerCertPem);
            operationalMisses = 0;
            replacedAt = undefined;
            rearmPending = false;
            setStatus('connecting', 'bootstrapped; dialing the operational room', {
              lastErrorCode: undefined,
              lastError: undefined,
              operationalHashPrefix: hashPrefix(operationalHash(fresh.caCertDer)),
              ...certificate.status,
              certificateRenewalError: undefined,
            });
            metrics?.certificate(certificate.notAfter, undefined);
          } catch (err) {
            // With certificates in hand a refusal only means "still initialized": keep using them. A CA that
            // does not match the pin (a rogue bridge in the init room) never replaces them either. Once replaced
            // (CT_BROKER_REPLACED), a refusal is the news: shown as rejected.
            if (!credentials) throw err;
            operationalMisses = 0;
            // A refusal settles a pending re-arm (someone else spent it); any other failure keeps it pending, so
            // the next attempt is the init room again, not the operational room while the cluster stays re-armed.
            if (isCloudtaserError(err, 'CT_BOOTSTRAP_REFUSED')) rearmPending = false;
            if (!isCloudtaserError(err, 'CT_BOOTSTRAP_REFUSED') || replacedAt) throw err;
          }
        }
        await podApi?.start(credentials!, fingerprint!);
        // While it waits for a bridge, /status says so (the last failure's "dialing again at" is past by then).
        // A deregistration stays in front (it says what to do), as when the dial fails.
        if (status.phase === 'reconnecting' && status.lastErrorCode !== 'CT_NOT_REGISTERED')
          setStatus(
            'reconnecting',
            `${replacedAt ? replacedNote(replacedAt) : ''}waiting for a bridge in the operational room${status.lastError ? `; the last attempt failed: ${status.lastError}` : ''}`,
          );
        const session = await connect(credentials!);
        liveTunnel = session.mux;
        metrics?.tunnelOpened();
        operationalMisses = 0;
        backoff.reset();
        setStatus('operational', 'mutual TLS tunnel to the bridge is up', {
          lastErrorCode: undefined,
          lastError: undefined,
          lastTunnelClose: undefined,
          beaconIp: session.ip,
          tunnel: { since: new Date().toISOString() },
        });
        const why = await holdTunnel(session);
        liveTunnel = undefined;
        metrics?.tunnelClosed(closeCodeOf(why));
        if (stop.signal.aborted) break;
        // A first, jittered pause: when a beacon replica or a bridge restarts, every broker loses its tunnel at
        // the same instant, and redialing in step would hit the survivors as one burst.
        const pause = backoff.next();
        const closeCode = closeCodeOf(why);
        // Losing the tunnel is what pods feel (requests wait up to 5 s for the next one, then 503): a warning, once per
        // code and minute, unless the bridge closed it on purpose (a drain with nothing in flight) or a line of its
        // own below says why. Before, only info lines said so, and the first warning an SRE saw could be a summary
        // of an earlier incident.
        if (!EXPLAINED_CLOSES.has(closeCode))
          retrySummary.warn(
            `tunnel_lost|${closeCode}`,
            { event: 'broker.tunnel_lost', code: closeCode, reason: why.message },
            'lost the tunnel to the bridge: pod requests wait up to 5 s for the next one, then get 503; reconnecting',
          );
        if (closeCode === 'CT_REARMED') {
          // The bridge asks for a bootstrap now (the cluster was re-armed while this broker was connected): the
          // next attempt goes to the init room, so this broker spends the re-arm instead of leaving it open.
          rearmPending = true;
          log.info(
            { event: 'broker.rearmed', code: closeCode },
            'the cluster was re-armed while connected: bootstrapping again now',
          );
        }
        if (closeCode === 'CT_BROKER_REPLACED') {
          // This broker's key no longer counts. It goes on as before (the operational room refuses it; after
          // reBootstrapAfterFailures it asks the init room, where an attested broker may bootstrap again), but
          // every reason it shows from now on starts with who replaced it, until a bootstrap of its own succeeds.
          replacedAt = new Date().toISOString();
          replacedRetryFrom = Date.now();
          if (bootstrappedAt !== undefined && Date.now() - bootstrappedAt > REPLACEMENTS_FORGOTTEN_MS)
            replacements = 0;
          replacements++;
          log.warn(
            { event: 'broker.replaced', code: closeCode },
            `another broker bootstrapped this cluster and the bridge closed this one's tunnel: if this cluster's operator did not just restart, ${whoCouldHoldIt} may hold the cluster now`,
          );
        }
        if (closeCode === 'CT_NOT_REGISTERED') {
          // Deregistration deletes the cluster CA: these certificates can never open the operational room again,
          // and a registration made anew waits in the init room. Go there at once (before: after
          // reBootstrapAfterFailures operational misses, ~90 s, while /status said to register again).
          operationalMisses = timing.reBootstrapAfterFailures;
          log.warn(
            { event: 'broker.not_registered', code: why.code, reason: why.message },
            'the bridge closed the tunnel: this cluster is not registered (deregistered?); register it again (cloudtaser-cli source register, or cdktf deploy): a new registration has a new CA, which this broker accepts only once it is pinned (cloudtaser-cli target trust pin --ca-sha256 <its operational hash>, or operator.broker.trust.caSha256); trust never moves to another CA by itself',
          );
        }
        setStatus(
          'reconnecting',
          `the tunnel closed (${why.message}); dialing again at ${new Date(Date.now() + pause).toISOString()}`,
          {
            lastErrorCode: why.code,
            lastError: why.message,
            lastTunnelClose: { code: closeCode, reason: why.message, at: new Date().toISOString() },
          },
        );
        await sleep(pause, stop.signal);
      } catch (err) {
        if (stop.signal.aborted) break;
        const error = toCloudtaserError(err);
        const refusal = isCloudtaserError(error, 'CT_BOOTSTRAP_REFUSED') ? error.details.refusal : undefined;
        if (refusal === 'CT_ALREADY_INITIALIZED' || refusal === 'CT_ATTESTATION_FAILED') {
          // Both heal without a restart (a re-arm, refreshed keys, a fresh token): retry at the slow pace.
          const refused = error.message.replace(/^the bridge refused the bootstrap: /, '');
          setStatus(
            'rejected',
            replacedAt
              ? `${replacedNote(replacedAt)}if this cluster's operator did not restart then, ${whoCouldHoldIt} may hold the cluster: have the OpenBao admin check before re-arming (cloudtaser-cli source doctor). ${refused}`
              : refused,
            {
              lastErrorCode: replacedAt ? 'CT_BROKER_REPLACED' : refusal,
              lastError: error.message,
            },
          );
          await sleep(jitteredInterval(timing.rejectedRetryMs), stop.signal);
          continue;
        }
        if (credentials && (error.code === 'CT_BEACON_LIMIT' || error.code === 'CT_BEACON_REJECTED'))
          operationalMisses++;
        const delay = backoff.next();
        const phase: BrokerPhase = !fingerprint
          ? 'starting'
          : !credentials
            ? status.phase === 'rejected'
              ? 'rejected'
              : 'bootstrapping'
            : 'reconnecting';
        // Nobody answering in the operational room is what follows a deregistration: the cause stays in front.
        const unregistered =
          status.lastTunnelClose?.code === 'CT_NOT_REGISTERED' && error.code === 'CT_BEACON_LIMIT';
        // "No peer arrived" from the beacon means no bridge waited in the room: say that, not a beacon limit.
        const noBridge =
          error.code === 'CT_BEACON_LIMIT' && /^no peer arrived/.test(String(error.details?.reason ?? ''));
        // When, not "in N ms": the reason is read later (/status, the doctor) and must not look stale.
        const again = `dialing again at ${new Date(Date.now() + delay).toISOString()}`;
        const replaced = replacedAt ? replacedNote(replacedAt) : '';
        const why = unregistered
          ? 'the bridge closed the last tunnel because this cluster is not registered (CT_NOT_REGISTERED); register it again (source register, or cdktf deploy) and pin its new CA (target trust pin --ca-sha256 <operational hash>)'
          : noBridge
            ? `no bridge came to the ${credentials ? 'operational' : 'init'} room within the beacon's wait (${error.message}): the bridge is down, does not serve this cluster (deregistered?), or waits at other beacon replicas; \`cloudtaser-cli source doctor\` on the secret-store side says which`
            : error.message;
        setStatus(
          phase,
          `${replaced}${why}; ${again}`,
          unregistered
            ? { lastErrorCode: 'CT_NOT_REGISTERED', lastError: status.lastTunnelClose!.reason }
            : { lastErrorCode: error.code, lastError: error.message },
        );
        // The log says what /status says (an SRE drill read "CT_BEACON_LIMIT: no peer arrived" every minute from an
        // orphaned broker after a deregistration, as a beacon limit).
        retrySummary.warn(
          error.code,
          { event: 'broker.retry', code: error.code, delayMs: delay, reason: why },
          'broker attempt failed',
        );
        await sleep(delay, stop.signal);
      }
    }
  };
  const running = run();
  const renewing = runCertificateRenewal({
    renewBeforeMs: timing.certificateRenewBeforeMs,
    retryMs: timing.certificateRenewRetryMs,
    timeoutMs: timing.stepTimeoutMs,
    credentials: () => credentials,
    keyPair,
    ...(options.podApi && podApiKeyPair
      ? { podApi: { dnsNames: options.podApi.dnsNames, keyPair: podApiKeyPair } }
      : {}),
    nextTunnel,
    renewed: async (fresh) => {
      credentials = fresh;
      podApi?.renew(fresh);
      const certificate = presentedCertificate(fresh.brokerCertPem);
      metrics?.certificate(certificate.notAfter, 'renewed');
      setStatus(status.phase, status.reason, {
        ...certificate.status,
        certificateRenewedAt: new Date().toISOString(),
        certificateRenewalError: undefined,
      });
    },
    failed: (error) => {
      metrics?.certificate(undefined, error.code);
      setStatus(status.phase, status.reason, {
        certificateRenewalError: { code: error.code, reason: error.message, at: new Date().toISOString() },
      });
    },
    signal: stop.signal,
    logger: log,
  });
  let closing: Promise<void> | undefined;

  return {
    drain() {
      draining = true;
    },
    status: () => currentStatus(),
    tunnel: () => liveTunnel,
    podApiListenUrl: () => podApi?.listenUrl(),
    webhookUrl: webhook?.url,
    migrator,
    healthUrl: health?.url,
    waitForPhase(phase, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (status.phase !== phase) return;
          cleanup();
          resolve(currentStatus());
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new CloudtaserError(
              'CT_CANCELLED',
              `broker did not reach ${phase} within ${timeoutMs} ms (now ${status.phase}: ${status.reason})`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    close() {
      closing ??= (async () => {
        // Pods and the API server get their answers first, through the tunnel that is still up; no new
        // connection is accepted meanwhile. Then the tunnel closes once the bridge has nothing in flight on it.
        await Promise.all([podApi?.close(timing.closeGraceMs), webhook?.close(timing.closeGraceMs)]);
        stop.abort();
        await Promise.all([
          liveTunnel?.closeWhenIdle('the broker is shutting down', timing.closeGraceMs),
          ...movedFrom,
        ]);
        await Promise.all([running, renewing]);
        retrySummary.close();
        reviewSummary.close();
        await migrator?.close();
        await health?.close();
        setStatus('stopped', 'closed');
      })();
      return closing;
    },
  };
}

/** An operational tunnel and the beacon replica it runs through. */
interface OperationalTunnel {
  readonly mux: TunnelMux;
  readonly ip: string;
}

/** Like Promise.any, but rejects with the most telling CloudtaserError instead of an AggregateError. */
/**
 * Why a broker serves no secrets until someone acts: its phase is `rejected` (a bootstrap refused, replaced by
 * another broker) with a code. Told to pods by the webhook and the pod API alike.
 */
function refusalOf(status: BrokerStatus): { code: string; reason: string } | undefined {
  return status.phase === 'rejected' && status.lastErrorCode
    ? { code: status.lastErrorCode, reason: status.reason }
    : undefined;
}

function firstFulfilled<T>(promises: Promise<T>[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const errors: unknown[] = [];
    for (const promise of promises) {
      promise.then(resolve, (err) => {
        errors.push(err);
        if (errors.length === promises.length) {
          const stated = errors.find(
            (e) => isCloudtaserError(e) && e.code !== 'CT_BEACON_UNREACHABLE' && e.code !== 'CT_CANCELLED',
          );
          reject(stated ?? errors[0]);
        }
      });
    }
  });
}

/** Counts a TokenReview or namespace read the bridge asked for, by the status the API server gave. */
async function countReview(
  metrics: BrokerMetrics | undefined,
  kind: 'review' | 'namespace',
  reply: Promise<TunnelReply> | TunnelReply,
): Promise<TunnelReply> {
  const answer = await reply;
  metrics?.tokenReview(kind, answer.status);
  return answer;
}

/** The longest pause of a replaced broker before it asks the init room again (see `replacements`). */
const MAX_REPLACED_RETRY_MS = 60 * 60_000;
/** Held this long since its own bootstrap, a broker starts counting replacements anew. */
const REPLACEMENTS_FORGOTTEN_MS = 60 * 60_000;

/** What a replaced broker's every reason starts with, until a bootstrap of its own succeeds. */
function replacedNote(replacedAt: string): string {
  return `another broker bootstrapped this cluster and replaced this one at ${replacedAt} (CT_BROKER_REPLACED); `;
}

/** Tunnel closes that are no news (a drain) or that get a line of their own when they happen. */
const EXPLAINED_CLOSES = new Set([
  'CT_TUNNEL_DRAINED',
  'CT_REARMED',
  'CT_BROKER_REPLACED',
  'CT_NOT_REGISTERED',
]);

/**
 * Why a tunnel closed, as its metric and /status say it: a GOAWAY carries the bridge's own code (mux.ts:
 * details.peerCode: CT_TUNNEL_DRAINED, CT_NOT_REGISTERED, CT_REARMED...), the cause to keep in front of the
 * generic CT_TUNNEL_CLOSED.
 */
function closeCodeOf(why: CloudtaserError): string {
  const peerCode = why.details?.peerCode;
  return typeof peerCode === 'string' ? peerCode : why.code;
}

function toCloudtaserError(err: unknown): CloudtaserError {
  if (err instanceof CloudtaserError) return err;
  return new CloudtaserError('CT_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
}

/** SHA-256 of the SubjectPublicKeyInfo DER: what the bridge computes from our CSR. */
function publicKeySha256(pair: KeyPair): string {
  return createHash('sha256')
    .update(pair.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/**
 * What /status says about the certificate the broker presents in the tunnel, read from that certificate itself
 * (not from the key pair), so the hash is the one the bridge computes from the peer certificate.
 */
function presentedCertificate(certPem: string): {
  readonly notAfter: Date;
  readonly status: Pick<BrokerStatus, 'certificateNotAfter' | 'certificateSerial' | 'brokerKeySha256'>;
} {
  const certificate = new X509Certificate(certPem);
  const notAfter = new Date(certificate.validTo);
  return {
    notAfter,
    status: {
      certificateNotAfter: notAfter.toISOString(),
      certificateSerial: certificate.serialNumber,
      brokerKeySha256: createHash('sha256')
        .update(certificate.publicKey.export({ type: 'spki', format: 'der' }))
        .digest('hex'),
    },
  };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
