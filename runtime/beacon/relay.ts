import type { Duplex } from 'node:stream';

/** Process-wide byte totals the relay adds to (the metrics read them at scrape time). */
export interface RelayTotals {
  bytesBrokerToBridge: number;
  bytesBridgeToBroker: number;
}

export interface RelayEnd {
  readonly durationMs: number;
  readonly bytesBrokerToBridge: number;
  readonly bytesBridgeToBroker: number;
  /** True when either side reset or errored instead of closing cleanly. */
  readonly aborted: boolean;
}

/**
 * Copies bytes both ways between two paired streams with backpressure: the same work as `a.pipe(b)` plus a
 * byte count. An end on one side ends the other's writable side (half-close); an error or reset on either
 * side destroys both. Never looks at the bytes.
 */
export function relayStreams(
  broker: Duplex,
  bridge: Duplex,
  totals: RelayTotals,
  onEnd: (end: RelayEnd) => void,
  idle?: { readonly ms: number; onIdle(): void },
): { destroy(): void } {
  const startedAt = performance.now();
  let brokerToBridge = 0;
  let bridgeToBroker = 0;
  let aborted = false;
  let closedCount = 0;
  let finished = false;

  const destroyBoth = () => {
    aborted = true;
    clearInterval(idleCheck);
    broker.destroy();
    bridge.destroy();
  };

  // Idle detection by sampling the byte counters, not socket.setTimeout: a socket timeout is refreshed on
  // every read and write, which costs measurable CPU at relay speeds. Fires between ms and 1.5 x ms of silence.
  let lastSeen = -1;
  let quietSince = performance.now();
  const idleCheck = idle
    ? setInterval(
        () => {
          const moved = brokerToBridge + bridgeToBroker;
          const now = performance.now();
          if (moved !== lastSeen) {
            lastSeen = moved;
            quietSince = now;
          } else if (now - quietSince >= idle.ms) {
            clearInterval(idleCheck);
            idle.onIdle();
          }
        },
        Math.max(50, Math.floor(idle.ms / 2)),
      )
    : undefined;
  idleCheck?.unref();

  const pump = (source: Duplex, sink: Duplex, count: (bytes: number) => void) => {
    source.on('data', (chunk: Buffer) => {
      count(chunk.length);
      if (!sink.write(chunk)) source.pause();
    });
    sink.on('drain', () => source.resume());
    source.once('end', () => sink.end());
  };
  pump(broker, bridge, (bytes) => {
    brokerToBridge += bytes;
    totals.bytesBrokerToBridge += bytes;
  });
  pump(bridge, broker, (bytes) => {
    bridgeToBroker += bytes;
    totals.bytesBridgeToBroker += bytes;
  });

  const onClose = (other: Duplex) => (hadError?: boolean) => {
    // A clean close means this side both ended and finished; the other side has been ended by the pump
    // and closes on its own once its peer is done. Anything else is a reset: take the pair down.
    if (hadError === true || !other.writableEnded) destroyBoth();
    closedCount += 1;
    if (closedCount === 2 && !finished) {
      finished = true;
      clearInterval(idleCheck);
      onEnd({
        durationMs: performance.now() - startedAt,
        bytesBrokerToBridge: brokerToBridge,
        bytesBridgeToBroker: bridgeToBroker,
        aborted,
      });
    }
  };
  broker.on('error', destroyBoth);
  bridge.on('error', destroyBoth);
  broker.once('close', onClose(bridge));
  bridge.once('close', onClose(broker));
  // The legs may have been paused while their announce was read; the pump owns the flow from here.
  broker.resume();
  bridge.resume();
  return { destroy: destroyBoth };
}
