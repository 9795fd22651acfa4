/**
 * Tunnel framing: every frame is a 9-byte header (type u8, stream id u32 BE, payload length u32 BE) and then
 * the payload. The decoder checks the length against its bound BEFORE buffering the payload, so a hostile
 * length costs nothing.
 */
import { CloudtaserError } from '../core/errors.js';

export const FrameType = {
  /** Opens a stream; payload = JSON request head {method, path, headers}. */
  OPEN: 0x01,
  /** Body bytes for a stream, in the direction of the sender. */
  DATA: 0x02,
  /** The sender has sent its whole body on this stream. */
  END: 0x03,
  /** Answer to an OPEN; payload = JSON response head {status, headers}. */
  RESPONSE: 0x04,
  /** Abandons one stream; payload = JSON {code, reason}. */
  RESET: 0x05,
  /** Liveness probe on stream 0; payload = 8 opaque bytes the peer echoes. */
  PING: 0x06,
  PONG: 0x07,
  /** The sender is closing the tunnel; payload = JSON {code, reason}. Stream 0. */
  GOAWAY: 0x08,
} as const;

export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

const FRAME_TYPE_NAMES = new Map<number, string>(
  Object.entries(FrameType).map(([name, value]) => [value, name]),
);

export function frameTypeName(type: number): string {
  return FRAME_TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

export const FRAME_HEADER_BYTES = 9;
/** Largest stream id; ids are never reused within one tunnel, so a tunnel ends before it runs out. */
export const MAX_STREAM_ID = 0xffff_ffff;
/** Senders split bodies into DATA frames of at most this many bytes; receivers accept at least this. */
export const DATA_CHUNK_BYTES = 16 * 1024;

export interface Frame {
  readonly type: FrameTypeValue;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function encodeFrame(type: FrameTypeValue, streamId: number, payload: Uint8Array = EMPTY): Buffer {
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_STREAM_ID) {
    throw new CloudtaserError('CT_INTERNAL', `tunnel stream id ${streamId} is out of range`);
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  frame.writeUInt8(type, 0);
  frame.writeUInt32BE(streamId, 1);
  frame.writeUInt32BE(payload.byteLength, 5);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

const EMPTY = Buffer.alloc(0);

/** Several frames of one stream, encoded into one buffer (one copy of each payload, one write). */
export function encodeFrames(
  streamId: number,
  frames: ReadonlyArray<readonly [FrameTypeValue, Uint8Array?]>,
): Buffer {
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_STREAM_ID) {
    throw new CloudtaserError('CT_INTERNAL', `tunnel stream id ${streamId} is out of range`);
  }
  let total = 0;
  for (const [, payload] of frames) total += FRAME_HEADER_BYTES + (payload?.byteLength ?? 0);
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const [type, payload = EMPTY] of frames) {
    out.writeUInt8(type, offset);
    out.writeUInt32BE(streamId, offset + 1);
    out.writeUInt32BE(payload.byteLength, offset + 5);
    out.set(payload, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + payload.byteLength;
  }
  return out;
}

/**
 * Incremental decoder: feed it chunks as they arrive, get whole frames back. Throws CT_TUNNEL_PROTOCOL on an
 * unknown type or a payload over `maxPayloadBytes`; the caller then closes the tunnel.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxPayloadBytes: number) {}

  /** Bytes held while waiting for the rest of a frame; never more than one header plus one payload. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const header = this.peek(FRAME_HEADER_BYTES);
      const type = header.readUInt8(0);
      const streamId = header.readUInt32BE(1);
      const length = header.readUInt32BE(5);
      if (!FRAME_TYPE_NAMES.has(type)) {
        throw new CloudtaserError(
          'CT_TUNNEL_PROTOCOL',
          `tunnel frame has unknown type ${frameTypeName(type)}`,
          {
            details: { frameType: type },
          },
        );
      }
      if (length > this.maxPayloadBytes) {
        throw new CloudtaserError(
          'CT_TUNNEL_PROTOCOL',
          `tunnel ${frameTypeName(type)} frame of ${length} bytes exceeds the ${this.maxPayloadBytes}-byte frame limit`,
          { details: { frameType: type, length } },
        );
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      const whole = this.take(FRAME_HEADER_BYTES + length);
      frames.push({
        type: type as FrameTypeValue,
        streamId,
        payload: whole.subarray(FRAME_HEADER_BYTES),
      });
    }
    return frames;
  }

  private peek(count: number): Buffer {
    if (this.chunks[0].length < count) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, count);
  }

  private take(count: number): Buffer {
    if (this.chunks[0].length < count) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0];
    const out = first.subarray(0, count);
    if (first.length === count) this.chunks.shift();
    else this.chunks[0] = first.subarray(count);
    this.buffered -= count;
    return out;
  }
}
