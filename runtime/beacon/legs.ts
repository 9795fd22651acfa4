import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, type WebSocket } from 'ws';
import {
  type Announce,
  AnnounceError,
  type BeaconDoor,
  type BeaconRole,
  type ControlMessage,
  encodeFrame,
  FRAME_HEADER_BYTES,
  parseAnnounce,
} from './protocol.js';

/** Codes the beacon puts in an `error` frame. */
export type RejectCode = 'CT_BEACON_PROTOCOL' | 'CT_BEACON_LIMIT' | 'CT_BEACON_UNAUTHENTICATED';

/** The beacon's one refusal path (logs and counts); the doors and the pairing core both refuse through it. */
export type Refuse = (
  reason: string,
  code: RejectCode,
  message: string,
  meta: Record<string, unknown>,
) => void;

/** What a leg reports to the pairing core (pairing.ts), which owns rooms, waiting bounds and the relay. */
export interface LegEvents {
  announced(leg: Leg, announce: Announce): void;
  /** The client broke the protocol before pairing; `reason` is a metric label. */
  fault(leg: Leg, reason: string, message: string): void;
  /** The connection is gone (any state). */
  closed(leg: Leg): void;
}

/** How long a rejected client gets to read its error frame before the socket is destroyed. */
const REJECT_LINGER_MS = 2_000;

/** One client connection through any door, from its first announce byte until it is handed to the relay. */
export abstract class Leg {
  role: BeaconRole | undefined;
  hash: string | undefined;
  /** Set by the pairing core; cleared when the leg leaves the queue. */
  waiting: { timers: NodeJS.Timeout[]; since: number } | undefined;
  paired = false;
  rejected = false;
  /**
   * For a bridge: the fingerprint of the bridge CA that admitted it, i.e. its OpenBao operator. Undefined for
   * brokers and for bridges of a beacon that admits anonymous ones.
   */
  operator: string | undefined;
  /**
   * For a broker: its outer TLS proved a key the room's cluster CA signed (broker-proof.ts). It takes a place an
   * anonymous broker holds, and bridges pair with it first.
   */
  proven = false;

  constructor(
    readonly id: number,
    readonly door: BeaconDoor,
    readonly remote: string,
    /** The TCP or TLS socket whose inactivity bounds an idle pair. */
    readonly transport: Socket,
    readonly acceptedAt: number,
  ) {}

  abstract send(message: ControlMessage): void;
  /** Tells the client why (when the door allows) and closes. */
  abstract reject(code: RejectCode, reason: string): void;
  /** Sends one last control message (no refusal: `draining`) and closes the connection cleanly. */
  abstract goAway(message: ControlMessage): void;
  /** Stops watching the client and returns the byte stream for the relay. */
  abstract detach(): Duplex;
  abstract destroy(): void;
}

/** A raw (TLS door, ALPN cloudtaser-beacon/1) or plain-door connection: length-prefixed JSON frames. */
export class SocketLeg extends Leg {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  // Before pairing, an end from the client means it gave up; half-open only matters once bytes flow.
  private readonly onEnd = () => this.socket.destroy();

  constructor(
    id: number,
    door: 'tls' | 'plain',
    remote: string,
    readonly socket: Socket,
    acceptedAt: number,
    private readonly maxAnnounceBytes: number,
    private readonly events: LegEvents,
  ) {
    super(id, door, remote, socket, acceptedAt);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.once('close', () => events.closed(this));
  }

  private receive(chunk: Buffer): void {
    if (this.role !== undefined) {
      // The client must stay silent until it has read `paired`; bytes now would be lost or misrouted.
      this.events.fault(this, 'early_data', 'client sent bytes before it was paired');
      return;
    }
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.buffered.length < FRAME_HEADER_BYTES) return;
    const length = this.buffered.readUInt16BE(0);
    if (length > this.maxAnnounceBytes) {
      this.events.fault(
        this,
        'announce_too_large',
        `announce of ${length} bytes exceeds ${this.maxAnnounceBytes}`,
      );
      return;
    }
    if (this.buffered.length < FRAME_HEADER_BYTES + length) return;
    const body = this.buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
    const extra = this.buffered.length - FRAME_HEADER_BYTES - length;
    this.buffered = Buffer.alloc(0);
    const announce = announceOrFault(this, body, this.events);
    if (!announce) return;
    if (extra > 0) {
      this.events.fault(this, 'early_data', 'client sent bytes after its announce before it was paired');
      return;
    }
    this.events.announced(this, announce);
  }

  send(message: ControlMessage): void {
    if (this.socket.writable) this.socket.write(encodeFrame(message));
  }

  reject(code: RejectCode, reason: string): void {
    this.goAway({ t: 'error', code, reason });
  }

  goAway(message: ControlMessage): void {
    if (this.rejected) return;
    this.rejected = true;
    this.socket.off('data', this.onData);
    // Keep reading (and dropping) so a client still sending does not turn our close into a reset that
    // would discard the last frame before the client reads it.
    this.socket.on('data', discard);
    this.socket.resume();
    if (this.socket.writable) this.socket.end(encodeFrame(message));
    setTimeout(() => this.socket.destroy(), REJECT_LINGER_MS).unref();
  }

  detach(): Duplex {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    return this.socket;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Bytes a WebSocket client may send before it is paired besides its announce: frame headers and a few control
 * frames. ws only hands over whole messages, and buffers a message until its last fragment (up to
 * --ws-max-payload), so the raw and plain doors' early refusals are enforced here on the bytes themselves.
 */
const UNPAIRED_WEBSOCKET_SLACK_BYTES = 1024;

/** A WebSocket-door connection: announce in the first binary message, control frames as text messages. */
export class WebSocketLeg extends Leg {
  private readonly onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) =>
    this.receive(data, isBinary);
  private unpairedBytes = 0;
  /** Counts what arrives before pairing, so an unfinished message cannot make ws buffer up to its payload limit. */
  private readonly onUnpairedBytes = (chunk: Buffer) => {
    this.unpairedBytes += chunk.length;
    if (this.unpairedBytes <= this.maxAnnounceBytes + UNPAIRED_WEBSOCKET_SLACK_BYTES || this.rejected) return;
    this.transport.off('data', this.onUnpairedBytes);
    if (this.role === undefined)
      this.events.fault(
        this,
        'announce_too_large',
        `${this.unpairedBytes} bytes before a complete announce (at most ${this.maxAnnounceBytes})`,
      );
    else this.events.fault(this, 'early_data', 'client sent data before it was paired');
  };

  constructor(
    id: number,
    remote: string,
    readonly ws: WebSocket,
    transport: Socket,
    acceptedAt: number,
    private readonly maxAnnounceBytes: number,
    private readonly events: LegEvents,
  ) {
    super(id, 'wss', remote, transport, acceptedAt);
    ws.on('message', this.onMessage);
    transport.on('data', this.onUnpairedBytes);
    // ws reports oversized messages and bad frames here and then closes the socket itself.
    ws.on('error', () => {
      if (!this.paired && !this.rejected)
        this.events.fault(this, 'websocket_frame', 'invalid WebSocket frame');
    });
    ws.once('close', () => events.closed(this));
  }

  private receive(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.role !== undefined) {
      this.events.fault(this, 'early_data', 'client sent a message before it was paired');
      return;
    }
    if (!isBinary) {
      this.events.fault(this, 'announce_malformed', 'the announce must be a binary WebSocket message');
      return;
    }
    const body = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (body.length > this.maxAnnounceBytes) {
      this.events.fault(
        this,
        'announce_too_large',
        `announce of ${body.length} bytes exceeds ${this.maxAnnounceBytes}`,
      );
      return;
    }
    const announce = announceOrFault(this, body, this.events);
    if (!announce) return;
    this.events.announced(this, announce);
  }

  send(message: ControlMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }

  reject(code: RejectCode, reason: string): void {
    // 1008 = policy violation, 1013 = try again later; the reason repeats the code for plain WS tools.
    this.closeWith({ t: 'error', code, reason }, code === 'CT_BEACON_LIMIT' ? 1013 : 1008, code);
  }

  goAway(message: ControlMessage): void {
    // 1001 = going away: the server is shutting down.
    this.closeWith(message, 1001, message.t);
  }

  private closeWith(message: ControlMessage, closeCode: number, closeReason: string): void {
    if (this.rejected) return;
    this.rejected = true;
    this.ws.off('message', this.onMessage);
    if (this.ws.readyState === this.ws.OPEN) {
      this.ws.send(JSON.stringify(message));
      this.ws.close(closeCode, closeReason);
    }
    setTimeout(() => this.ws.terminate(), REJECT_LINGER_MS).unref();
  }

  detach(): Duplex {
    this.ws.off('message', this.onMessage);
    this.transport.off('data', this.onUnpairedBytes);
    const stream = createWebSocketStream(this.ws);
    // ws ends the stream's readable side when the connection closes, but its writable side waits for a 'finish'
    // that a closed socket never gives: the stream never closed, and the pair stayed in the relay (and in
    // cloudtaser_beacon_paired) until the idle timeout. A close without a close frame (1006: a reset, a crash, a
    // dropped network) is a reset and takes the pair down, as a TCP reset does on the other doors; after a clean
    // close the stream closes once its end has reached the relay.
    this.ws.once('close', (code: number) => {
      if (stream.destroyed) return;
      if (code === 1006) stream.destroy(new Error('the WebSocket connection closed without a close frame'));
      else
        setImmediate(() => {
          if (!stream.destroyed) stream.destroy();
        });
    });
    return stream;
  }

  destroy(): void {
    this.ws.terminate();
  }
}

function discard(): void {}

/** The parsed announce, or undefined after reporting why it was refused (the same for every door). */
function announceOrFault(leg: Leg, body: Buffer, events: LegEvents): Announce | undefined {
  try {
    return parseAnnounce(body);
  } catch (err) {
    if (!(err instanceof AnnounceError)) throw err;
    events.fault(leg, err.fault, err.message);
    return undefined;
  }
}
