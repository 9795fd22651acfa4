/**
 * The beacon's pairing core: rooms keyed by hash where brokers and bridges wait for each other, the bounds on
 * waiting (per room, per address, in total, in time), the pairing rate per room, and the byte copy between a
 * paired broker and bridge. It sees legs, never sockets or doors.
 */
import { timerDelay } from '../core/backoff.js';
import { hashPrefix, type Logger } from '../core/index.js';
import type { Leg, LegEvents, Refuse, RejectCode } from './legs.js';
import type { BeaconLimits } from './limits.js';
import type { BeaconMetrics } from './metrics.js';
import type { Announce, BeaconRole, ControlMessage } from './protocol.js';
import { relayStreams } from './relay.js';

export interface PairingCoreOptions {
  readonly limits: BeaconLimits;
  readonly metrics: BeaconMetrics;
  readonly log: Logger;
  readonly refuse: Refuse;
  /**
   * Told of every announce before the leg may wait; returns why it may not (a bridge without a certificate of a
   * bridge CA), or undefined.
   */
  readonly admit: (leg: Leg, role: BeaconRole, hash: string) => string | undefined;
}

interface Room {
  readonly broker: Leg[];
  readonly bridge: Leg[];
  /**
   * When each bridge operator (admitting CA) of this room was last paired: a broker meets the operators in turn,
   * so the bridges of another operator sharing the beacon cannot keep ours from the brokers of our clusters.
   */
  readonly operatorTurns: Map<string, number>;
}

/** The operator key of a bridge leg ('' when the beacon admits bridges anonymously). */
function operatorOf(leg: Leg): string {
  return leg.operator ?? '';
}

export class PairingCore implements LegEvents {
  private readonly limits: BeaconLimits;
  private readonly metrics: BeaconMetrics;
  private readonly log: Logger;
  private readonly refuse: Refuse;
  private readonly admit: PairingCoreOptions['admit'];
  private readonly waitingByAddress = new Map<string, number>();
  /**
   * Brokers waiting without a proof, oldest first. Waiting costs an anonymous broker nothing (no credential), so at a
   * bound on all waiters or all connections they give way to newcomers instead of keeping them out.
   */
  private readonly anonymousBrokers = new Set<Leg>();
  private readonly rooms = new Map<string, Room>();
  /** Pairing budget per room hash (a token bucket), and the timers that pair rooms held back by it. */
  private readonly pairingBudgets = new Map<string, { tokens: number; at: number }>();
  private readonly pairingTimers = new Map<string, NodeJS.Timeout>();
  private readonly budgetSweep: NodeJS.Timeout;
  private readonly relays = new Set<{ destroy(): void }>();
  private pairings = 0;
  private closing = false;
  /** Set by drain(): when the relays this replica still carries are cut (performance.now() time). */
  private relaysCutAt: number | undefined;
  /** Announces refused because the replica drains. */
  private drainRefusals = 0;
  /** Told when the last relay ends. */
  private readonly onRelaysEnded = new Set<() => void>();

  constructor(options: PairingCoreOptions) {
    this.limits = options.limits;
    this.metrics = options.metrics;
    this.log = options.log;
    this.refuse = options.refuse;
    this.admit = options.admit;
    // Full buckets carry no information; dropping them keeps the table as small as the rooms in use.
    this.budgetSweep = setInterval(() => this.sweepPairingBudgets(), 10_000);
    this.budgetSweep.unref();
  }

  /** Rooms (hashes) with at least one waiter. */
  get roomCount(): number {
    return this.rooms.size;
  }

  get pairingsTotal(): number {
    return this.pairings;
  }

  /** Source addresses with waiting connections. */
  waitingAddresses(): Iterable<string> {
    return this.waitingByAddress.keys();
  }

  get relayCount(): number {
    return this.relays.size;
  }

  get drainRefusalCount(): number {
    return this.drainRefusals;
  }

  /**
   * The replica is shutting down. Every waiting connection is told so (`draining`, with the time left before the
   * relays are cut) and closed, and so is every announce from now on: clients wait on other replicas, and a
   * bridge moves the tunnels it has through this one while they still run. The relays keep copying until they
   * end or close() cuts them. Returns how many waiting connections were told.
   */
  drain(relaysCutInMs: number): number {
    if (this.closing) return 0;
    this.relaysCutAt ??= performance.now() + relaysCutInMs;
    let told = 0;
    for (const room of this.rooms.values()) {
      for (const leg of [...room.broker, ...room.bridge]) {
        this.stopWaiting(leg);
        leg.goAway(this.drainingMessage());
        told += 1;
      }
    }
    this.rooms.clear();
    for (const timer of this.pairingTimers.values()) clearTimeout(timer);
    this.pairingTimers.clear();
    return told;
  }

  /** Resolves once no relay is left (true), or after `ms` with relays still open (false). */
  relaysEnded(ms: number): Promise<boolean> {
    if (this.relays.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ended: boolean) => {
        clearTimeout(timer);
        this.onRelaysEnded.delete(onEnded);
        resolve(ended);
      };
      const onEnded = () => done(true);
      const timer = setTimeout(() => done(false), timerDelay(ms));
      this.onRelaysEnded.add(onEnded);
    });
  }

  private drainingMessage(): ControlMessage {
    const left = Math.max(0, Math.round((this.relaysCutAt ?? performance.now()) - performance.now()));
    return { t: 'draining', retryAfterMs: left };
  }

  /** Ends every relay and every wait; announces after this are ignored. */
  close(): void {
    this.closing = true;
    for (const relay of this.relays) relay.destroy();
    for (const room of this.rooms.values()) {
      for (const leg of [...room.broker, ...room.bridge]) this.stopWaiting(leg);
    }
    this.rooms.clear();
    clearInterval(this.budgetSweep);
    for (const timer of this.pairingTimers.values()) clearTimeout(timer);
    this.pairingTimers.clear();
  }

  // ---- LegEvents ----

  announced(leg: Leg, announce: Announce): void {
    if (leg.rejected || this.closing) return;
    const refusal = this.admit(leg, announce.role, announce.hash);
    if (refusal) {
      this.rejectLeg(leg, 'bridge_unauthenticated', 'CT_BEACON_UNAUTHENTICATED', refusal, announce);
      return;
    }
    if (this.relaysCutAt !== undefined) {
      this.drainRefusals += 1;
      this.log.debug({ event: 'drain_refused', ...legMeta(leg), role: announce.role });
      leg.goAway(this.drainingMessage());
      return;
    }
    leg.role = announce.role;
    leg.hash = announce.hash;
    const room = this.rooms.get(announce.hash);
    const peers = room?.[opposite(announce.role)];
    let heldBack = false;
    if (room && peers && peers.length > 0) {
      if (this.takePairingToken(announce.hash)) {
        const peer = announce.role === 'broker' ? this.takeBridge(room) : this.takeBroker(room);
        this.stopWaiting(peer);
        this.dropRoomIfEmpty(announce.hash);
        // As PROTOCOL.md says: the same frame whether or not a peer waits already (`paired` follows at once).
        leg.send({ t: 'waiting', keepaliveMs: this.limits.keepaliveIntervalMs });
        if (announce.role === 'broker') this.pair(leg, peer);
        else this.pair(peer, leg);
        return;
      }
      if (announce.role === 'broker' && !leg.proven) {
        this.rejectLeg(
          leg,
          'pairings_per_hash',
          'CT_BEACON_LIMIT',
          `this room already paired ${this.limits.maxPairingsPerHashPerSecond} times in the last second; dial again`,
        );
        return;
      }
      // A bridge is never refused for the rate, nor a proven broker (a flood of anonymous ones spends the budget):
      // it waits, and the room pairs as soon as the budget allows.
      heldBack = true;
    }
    const meta = legMeta(leg);
    const queued = room?.[announce.role].length ?? 0;
    if (
      queued >= this.limits.maxWaitingPerHash &&
      !(
        room &&
        (this.makeRoomForOperator(room, leg, announce) || this.makeRoomForProven(room, leg, announce))
      )
    ) {
      this.rejectLeg(
        leg,
        'waiting_per_hash',
        'CT_BEACON_LIMIT',
        `${queued} ${announce.role}s already wait for this hash`,
      );
      return;
    }
    const fromAddress = this.waitingByAddress.get(leg.remote) ?? 0;
    if (fromAddress >= this.limits.maxWaitingPerAddress) {
      this.rejectLeg(
        leg,
        'waiting_per_address',
        'CT_BEACON_LIMIT',
        `${fromAddress} connections already wait from this address`,
      );
      return;
    }
    const counters = this.metrics.counters;
    const total = counters.waitingBroker + counters.waitingBridge;
    // Announced brokers in rooms nobody else is in (random hashes: no credential needed) filled every waiting place
    // and kept bridges and brokers out for as long as they were renewed (an outside drill). The oldest anonymous
    // broker waiter gives way instead; bridges (their CA) and proven brokers never do.
    if (total >= this.limits.maxWaiting && !this.evictAnonymousBroker('waiting_total_evicted')) {
      this.rejectLeg(
        leg,
        'waiting_total',
        'CT_BEACON_LIMIT',
        `the beacon already holds ${total} waiting connections`,
      );
      return;
    }
    // Looked up again: a waiter that gave up its place above may have emptied, and so dropped, the room.
    const current = this.rooms.get(announce.hash);
    const target = current ?? { broker: [], bridge: [], operatorTurns: new Map<string, number>() };
    if (!current) this.rooms.set(announce.hash, target);
    target[announce.role].push(leg);
    if (announce.role === 'broker' && !leg.proven) this.anonymousBrokers.add(leg);
    this.waitingByAddress.set(leg.remote, fromAddress + 1);
    if (announce.role === 'broker') counters.waitingBroker += 1;
    else counters.waitingBridge += 1;
    const waitMs = announce.role === 'broker' ? this.limits.brokerWaitMs : this.limits.bridgeWaitMs;
    const expiry = setTimeout(() => {
      this.withdraw(leg);
      this.rejectLeg(
        leg,
        'unmatched_timeout',
        'CT_BEACON_LIMIT',
        `no peer arrived within ${waitMs} ms; dial again`,
      );
    }, waitMs);
    const keepalive = setInterval(() => leg.send({ t: 'ping' }), this.limits.keepaliveIntervalMs);
    expiry.unref();
    keepalive.unref();
    leg.waiting = { timers: [expiry, keepalive], since: performance.now() };
    // The interval tells the waiting party how long a silence means a dead connection (replica-dial.ts).
    leg.send({ t: 'waiting', keepaliveMs: this.limits.keepaliveIntervalMs });
    this.log.debug({ event: 'waiting', ...meta, announceMs: round(performance.now() - leg.acceptedAt) });
    if (heldBack) this.schedulePairing(announce.hash);
  }

  fault(leg: Leg, reason: string, message: string): void {
    this.withdraw(leg);
    this.rejectLeg(leg, reason, 'CT_BEACON_PROTOCOL', message);
  }

  closed(leg: Leg): void {
    if (leg.waiting) {
      this.withdraw(leg);
      this.log.debug({ event: 'waiter_left', ...legMeta(leg) });
    }
  }

  // ---- the pairing rate per room ----

  /** Takes one pairing from the room's budget; false when the room is over its rate. */
  private takePairingToken(hash: string): boolean {
    const rate = this.limits.maxPairingsPerHashPerSecond;
    const now = performance.now();
    const budget = this.pairingBudgets.get(hash) ?? { tokens: rate, at: now };
    budget.tokens = Math.min(rate, budget.tokens + ((now - budget.at) * rate) / 1000);
    budget.at = now;
    this.pairingBudgets.set(hash, budget);
    if (budget.tokens < 1) return false;
    budget.tokens -= 1;
    return true;
  }

  /** Pairs the room's waiting brokers and bridges once its budget has a token again. */
  private schedulePairing(hash: string): void {
    if (this.pairingTimers.has(hash) || this.closing) return;
    const budget = this.pairingBudgets.get(hash);
    const missing = budget ? Math.max(0, 1 - budget.tokens) : 0;
    const delayMs = Math.ceil((missing * 1000) / this.limits.maxPairingsPerHashPerSecond);
    const timer = setTimeout(() => {
      this.pairingTimers.delete(hash);
      const room = this.rooms.get(hash);
      while (room && room.broker.length > 0 && room.bridge.length > 0) {
        if (!this.takePairingToken(hash)) {
          this.schedulePairing(hash);
          return;
        }
        const broker = this.takeBroker(room);
        const bridge = this.takeBridge(room);
        this.stopWaiting(broker);
        this.stopWaiting(bridge);
        this.pair(broker, bridge);
      }
      this.dropRoomIfEmpty(hash);
    }, delayMs);
    timer.unref();
    this.pairingTimers.set(hash, timer);
  }

  private sweepPairingBudgets(): void {
    const rate = this.limits.maxPairingsPerHashPerSecond;
    const now = performance.now();
    for (const [hash, budget] of this.pairingBudgets) {
      if (budget.tokens + ((now - budget.at) * rate) / 1000 >= rate) this.pairingBudgets.delete(hash);
    }
  }

  // ---- pairing and the byte copy ----

  private pair(broker: Leg, bridge: Leg): void {
    broker.paired = true;
    bridge.paired = true;
    this.pairings += 1;
    this.metrics.counters.paired += 1;
    this.metrics.pairing(broker.door, bridge.door);
    broker.send({ t: 'paired' });
    bridge.send({ t: 'paired' });
    const waitedMs = round(performance.now() - Math.min(broker.acceptedAt, bridge.acceptedAt));
    const hash = hashPrefix(broker.hash!);
    this.log.info({
      event: 'paired',
      hashPrefix: hash,
      brokerDoor: broker.door,
      bridgeDoor: bridge.door,
      brokerRemote: broker.remote,
      bridgeRemote: bridge.remote,
      waitedMs,
    });
    const brokerStream = broker.detach();
    const bridgeStream = bridge.detach();
    const onIdle = () => {
      this.refuse(
        'paired_idle',
        'CT_BEACON_LIMIT',
        `no bytes either way for ${this.limits.pairedIdleMs} ms`,
        {
          hashPrefix: hash,
        },
      );
      relay.destroy();
    };
    const relay = relayStreams(
      brokerStream,
      bridgeStream,
      this.metrics.counters,
      (end) => {
        this.relays.delete(relay);
        this.metrics.counters.paired -= 1;
        if (this.relays.size === 0) for (const ended of [...this.onRelaysEnded]) ended();
        this.log.info({
          event: 'relay_closed',
          hashPrefix: hash,
          brokerDoor: broker.door,
          bridgeDoor: bridge.door,
          durationMs: round(end.durationMs),
          bytesBrokerToBridge: end.bytesBrokerToBridge,
          bytesBridgeToBroker: end.bytesBridgeToBroker,
          aborted: end.aborted,
        });
      },
      { ms: this.limits.pairedIdleMs, onIdle },
    );
    this.relays.add(relay);
  }

  // ---- leaving a room ----

  /** Takes a leg out of its room's queue (idempotent). */
  /**
   * The bridge a broker meets: the longest-waiting one of the operator whose turn is oldest in this room. With one
   * operator (or anonymous bridges) that is plain first come, first served.
   */
  private takeBridge(room: Room): Leg {
    let chosen = 0;
    const first = operatorOf(room.bridge[0]!);
    if (room.bridge.some((leg) => operatorOf(leg) !== first)) {
      let oldestTurn = Number.POSITIVE_INFINITY;
      const considered = new Set<string>();
      room.bridge.forEach((leg, index) => {
        const operator = operatorOf(leg);
        if (considered.has(operator)) return;
        considered.add(operator);
        const turn = room.operatorTurns.get(operator) ?? Number.NEGATIVE_INFINITY;
        if (turn < oldestTurn) {
          oldestTurn = turn;
          chosen = index;
        }
      });
    }
    const [bridge] = room.bridge.splice(chosen, 1);
    room.operatorTurns.set(operatorOf(bridge!), this.pairings);
    return bridge!;
  }

  /** The broker a bridge pairs with: the first proven one (broker-proof.ts), else the longest waiting. */
  private takeBroker(room: Room): Leg {
    const proven = room.broker.findIndex((leg) => leg.proven);
    const [broker] = room.broker.splice(Math.max(proven, 0), 1);
    return broker!;
  }

  /**
   * A full room and a broker that proved it belongs there: the newest anonymous broker gives up its place, so
   * anonymous announces (the room's hash is public) cannot keep the cluster's own broker out. False when every
   * waiting broker is proven, or the newcomer is not.
   */
  private makeRoomForProven(room: Room, leg: Leg, announce: Announce): boolean {
    if (announce.role !== 'broker' || !leg.proven) return false;
    const evicted = room.broker.findLast((waiting) => !waiting.proven);
    if (!evicted) return false;
    this.withdraw(evicted);
    this.rejectLeg(
      evicted,
      'waiting_per_hash_proven',
      'CT_BEACON_LIMIT',
      "a broker proving this room's cluster CA needs a place in this full room; dial again",
    );
    return true;
  }

  /**
   * A full room and a bridge whose operator has no place in it: the newest waiter of the operator holding the most
   * places (at least two) gives up its place, so every operator sharing the beacon keeps one. False when nothing
   * can give way (brokers, anonymous bridges, an operator already waiting here).
   */
  private makeRoomForOperator(room: Room, leg: Leg, announce: Announce): boolean {
    if (announce.role !== 'bridge' || leg.operator === undefined) return false;
    const places = new Map<string, number>();
    for (const waiting of room.bridge)
      places.set(operatorOf(waiting), (places.get(operatorOf(waiting)) ?? 0) + 1);
    if (places.has(leg.operator)) return false;
    const [crowded, held] = [...places].reduce((most, entry) => (entry[1] > most[1] ? entry : most));
    if (held < 2) return false;
    const evicted = room.bridge.findLast((waiting) => operatorOf(waiting) === crowded)!;
    this.withdraw(evicted);
    this.rejectLeg(
      evicted,
      'waiting_per_hash_share',
      'CT_BEACON_LIMIT',
      "another operator's bridge needs a place in this full room; dial again",
    );
    return true;
  }

  private withdraw(leg: Leg): void {
    if (!leg.waiting || !leg.hash || !leg.role) return;
    const room = this.rooms.get(leg.hash);
    const queue = room?.[leg.role];
    const index = queue ? queue.indexOf(leg) : -1;
    if (index >= 0) queue!.splice(index, 1);
    this.stopWaiting(leg);
    this.dropRoomIfEmpty(leg.hash);
  }

  /**
   * Closes the anonymous broker that has waited longest (`reason`; it dials again, as after any refusal); false when
   * none waits. For the bounds on all waiters and on all connections (the doors ask when every connection announced).
   */
  evictAnonymousBroker(reason: 'waiting_total_evicted' | 'max_connections_evicted'): boolean {
    const oldest: Leg | undefined = this.anonymousBrokers.values().next().value;
    if (!oldest) return false;
    this.withdraw(oldest);
    this.rejectLeg(
      oldest,
      reason,
      'CT_BEACON_LIMIT',
      reason === 'waiting_total_evicted'
        ? `the beacon holds ${this.limits.maxWaiting} waiting connections: the anonymous broker that waited longest gave way; dial again`
        : `the beacon holds ${this.limits.maxConnections} connections, all announced: the anonymous broker that waited longest gave way; dial again`,
    );
    return true;
  }

  private stopWaiting(leg: Leg): void {
    this.anonymousBrokers.delete(leg);
    if (!leg.waiting) return;
    for (const timer of leg.waiting.timers) clearTimeout(timer);
    leg.waiting = undefined;
    if (leg.role === 'broker') this.metrics.counters.waitingBroker -= 1;
    else this.metrics.counters.waitingBridge -= 1;
    const count = (this.waitingByAddress.get(leg.remote) ?? 1) - 1;
    if (count <= 0) this.waitingByAddress.delete(leg.remote);
    else this.waitingByAddress.set(leg.remote, count);
  }

  private dropRoomIfEmpty(hash: string): void {
    const room = this.rooms.get(hash);
    if (room && room.broker.length === 0 && room.bridge.length === 0) this.rooms.delete(hash);
  }

  private rejectLeg(leg: Leg, reason: string, code: RejectCode, message: string, announce?: Announce): void {
    if (leg.rejected) return;
    const meta = legMeta(leg);
    // A refusal before the leg joins a room still says which role and room it asked for (hash prefix only).
    if (announce) Object.assign(meta, { role: announce.role, hashPrefix: hashPrefix(announce.hash) });
    this.refuse(reason, code, message, meta);
    leg.reject(code, message);
  }
}

function legMeta(leg: Leg): Record<string, unknown> {
  return {
    door: leg.door,
    role: leg.role,
    remote: leg.remote,
    hashPrefix: leg.hash ? hashPrefix(leg.hash) : undefined,
  };
}

function opposite(role: BeaconRole): BeaconRole {
  return role === 'broker' ? 'bridge' : 'broker';
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
