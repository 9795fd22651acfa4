/**
 * A small table-driven protobuf (proto3) codec. Message layouts are declared as TypeScript tables
 * (see messages.ts) instead of loading .proto files at start-up, which costs 40-75 ms per provider
 * process; this codec needs no reflection step at all.
 */
import { CloudtaserError } from '../../runtime/core/errors.js';

export type ScalarKind = 'string' | 'bytes' | 'bool' | 'int64' | 'uint32' | 'enum';

export interface FieldSpec {
  readonly name: string;
  readonly no: number;
  readonly kind: ScalarKind | 'message' | 'map';
  readonly repeated?: boolean;
  /** Message type for `message` fields and the value type of `map<string, Message>` fields. */
  readonly message?: () => MessageSpec;
}

export interface MessageSpec {
  readonly name: string;
  readonly fields: readonly FieldSpec[];
  /** Built lazily: field number -> spec. */
  byNumber?: Map<number, FieldSpec>;
}

// biome-ignore lint/suspicious/noExplicitAny: decoded messages are plain records typed at the call site
export type Msg = Record<string, any>;

export function message(name: string, fields: readonly FieldSpec[]): MessageSpec {
  return { name, fields };
}

/** Shorthand for a field row: `f('summary', 2, 'string')`. */
export function f(
  name: string,
  no: number,
  kind: FieldSpec['kind'],
  options: { repeated?: boolean; message?: () => MessageSpec } = {},
): FieldSpec {
  return { name, no, kind, ...options };
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class Writer {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(256);
  private pos = 0;
  private total = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.total += this.pos;
    this.buf = new Uint8Array(Math.max(256, n, this.buf.length * 2));
    this.pos = 0;
  }

  varint(value: number | bigint): void {
    this.ensure(10);
    if (typeof value === 'number' && value >= 0 && value < 0x80000000) {
      let v = value;
      while (v > 0x7f) {
        this.buf[this.pos++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buf[this.pos++] = v;
      return;
    }
    // Negative or large numbers: two's complement in 64 bits, as protobuf int64 requires.
    let v = BigInt.asUintN(64, BigInt(value));
    while (v > 0x7fn) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  tag(no: number, wire: number): void {
    this.varint(no * 8 + wire);
  }

  bytes(data: Uint8Array): void {
    this.varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  finish(): Uint8Array {
    const all = [...this.chunks, this.buf.subarray(0, this.pos)];
    const out = new Uint8Array(this.total + this.pos);
    let offset = 0;
    for (const chunk of all) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes `value` with `spec`. Fields that are `undefined` or `null` are omitted. */
export function encodeMessage(spec: MessageSpec, value: Msg): Uint8Array {
  const writer = new Writer();
  writeMessage(writer, spec, value);
  return writer.finish();
}

function writeMessage(writer: Writer, spec: MessageSpec, value: Msg): void {
  for (const field of spec.fields) {
    const v = value[field.name];
    if (v === undefined || v === null) continue;
    if (field.kind === 'map') {
      for (const [key, entry] of Object.entries(v as Record<string, Msg>)) {
        const inner = new Writer();
        inner.tag(1, WIRE_LEN);
        inner.bytes(textEncoder.encode(key));
        inner.tag(2, WIRE_LEN);
        inner.bytes(encodeMessage(field.message!(), entry));
        writer.tag(field.no, WIRE_LEN);
        writer.bytes(inner.finish());
      }
    } else if (field.repeated) {
      for (const item of v as unknown[]) writeField(writer, field, item);
    } else {
      writeField(writer, field, v);
    }
  }
}

function writeField(writer: Writer, field: FieldSpec, v: unknown): void {
  switch (field.kind) {
    case 'string':
      writer.tag(field.no, WIRE_LEN);
      writer.bytes(textEncoder.encode(v as string));
      return;
    case 'bytes':
      writer.tag(field.no, WIRE_LEN);
      writer.bytes(v as Uint8Array);
      return;
    case 'bool':
      writer.tag(field.no, WIRE_VARINT);
      writer.varint(v ? 1 : 0);
      return;
    case 'int64':
    case 'uint32':
    case 'enum':
      writer.tag(field.no, WIRE_VARINT);
      writer.varint(v as number | bigint);
      return;
    case 'message':
      writer.tag(field.no, WIRE_LEN);
      writer.bytes(encodeMessage(field.message!(), v as Msg));
      return;
    default:
      throw new CloudtaserError(
        'CT_INTERNAL',
        `unsupported protobuf field kind ${field.kind} in ${field.name}`,
      );
  }
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    // Fast path for values below 2^28; larger ones continue with multiplication to stay exact to 2^53.
    for (;;) {
      if (this.pos >= this.end) throw truncated();
      const byte = this.buf[this.pos++];
      if (shift < 28) result |= (byte & 0x7f) << shift;
      else result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
      shift += 7;
      if (shift > 63) throw malformed('varint longer than 10 bytes');
    }
    return shift < 28 ? result >>> 0 : result;
  }

  /** int64 as a JS number; two's complement negatives are restored. */
  int64(): number {
    const start = this.pos;
    const value = this.varint();
    if (this.pos - start === 10 || value >= 2 ** 63) {
      let big = 0n;
      let shift = 0n;
      for (let i = start; i < this.pos; i++) {
        big |= BigInt(this.buf[i] & 0x7f) << shift;
        shift += 7n;
      }
      return Number(BigInt.asIntN(64, big));
    }
    return value;
  }

  lengthDelimited(): Uint8Array {
    const length = this.varint();
    if (this.pos + length > this.end) throw truncated();
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        throw malformed(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw truncated();
  }
}

function spend(budget: { elements: number }): void {
  if (--budget.elements < 0)
    throw malformed(`more than ${MAX_DECODED_ELEMENTS} repeated elements in one message`);
}

function truncated(): CloudtaserError {
  return malformed('message is truncated');
}

function malformed(what: string): CloudtaserError {
  return new CloudtaserError(
    'CT_PROVIDER_PROTOCOL',
    `could not decode a gRPC message from Terraform: ${what}`,
  );
}

function indexOf(spec: MessageSpec): Map<number, FieldSpec> {
  if (!spec.byNumber) spec.byNumber = new Map(spec.fields.map((field) => [field.no, field]));
  return spec.byNumber;
}

/**
 * Repeated elements and map entries one message may decode into. Each takes two bytes on the wire, so a message
 * under the 256 MiB gRPC limit could otherwise become 100 million objects and exhaust the heap; Terraform's own
 * requests stay far below (CallFunction arguments, diagnostics paths).
 */
const MAX_DECODED_ELEMENTS = 1_000_000;

/** Decodes bytes into a plain record; unknown fields are skipped, repeated fields default to []. */
export function decodeMessage(
  spec: MessageSpec,
  data: Uint8Array,
  depth = 0,
  budget = { elements: MAX_DECODED_ELEMENTS },
): Msg {
  if (depth > 64) throw malformed('nesting deeper than 64 messages');
  const out: Msg = {};
  for (const field of spec.fields) {
    if (field.repeated) out[field.name] = [];
    else if (field.kind === 'map') out[field.name] = {};
  }
  const reader = new Reader(data, 0, data.length);
  const fields = indexOf(spec);
  while (reader.pos < reader.end) {
    const key = reader.varint();
    const no = Math.floor(key / 8);
    const wire = key & 7;
    const field = fields.get(no);
    if (!field) {
      reader.skip(wire);
      continue;
    }
    if (field.kind === 'map') {
      spend(budget);
      const entry = reader.lengthDelimited();
      const entryReader = new Reader(entry, 0, entry.length);
      let mapKey = '';
      let mapValue: Msg = {};
      while (entryReader.pos < entryReader.end) {
        const entryKey = entryReader.varint();
        if (entryKey === (1 << 3) + WIRE_LEN) mapKey = textDecoder.decode(entryReader.lengthDelimited());
        else if (entryKey === (2 << 3) + WIRE_LEN)
          mapValue = decodeMessage(field.message!(), entryReader.lengthDelimited(), depth + 1, budget);
        else entryReader.skip(entryKey & 7);
      }
      Object.defineProperty(out[field.name], mapKey, { value: mapValue, enumerable: true, writable: true });
      continue;
    }
    if (
      field.repeated &&
      wire === WIRE_LEN &&
      field.kind !== 'string' &&
      field.kind !== 'bytes' &&
      field.kind !== 'message'
    ) {
      // packed repeated scalars
      const packed = reader.lengthDelimited();
      const packedReader = new Reader(packed, 0, packed.length);
      while (packedReader.pos < packedReader.end) {
        spend(budget);
        out[field.name].push(readScalar(packedReader, field, depth, budget));
      }
      continue;
    }
    if (field.repeated) spend(budget);
    const value = readScalar(reader, field, depth, budget, wire);
    if (field.repeated) out[field.name].push(value);
    else out[field.name] = value;
  }
  return out;
}

function readScalar(
  reader: Reader,
  field: FieldSpec,
  depth: number,
  budget: { elements: number },
  wire?: number,
): unknown {
  const expectLen = field.kind === 'string' || field.kind === 'bytes' || field.kind === 'message';
  if (wire !== undefined && (expectLen ? wire !== WIRE_LEN : wire !== WIRE_VARINT)) {
    throw malformed(`field ${field.name} has wire type ${wire}`);
  }
  switch (field.kind) {
    case 'string':
      try {
        return textDecoder.decode(reader.lengthDelimited());
      } catch (err) {
        if (err instanceof CloudtaserError) throw err;
        throw malformed(`field ${field.name} is not valid UTF-8`);
      }
    case 'bytes':
      return reader.lengthDelimited();
    case 'message':
      return decodeMessage(field.message!(), reader.lengthDelimited(), depth + 1, budget);
    case 'bool':
      return reader.varint() !== 0;
    case 'int64':
      return reader.int64();
    default:
      return reader.varint();
  }
}
