/**
 * Schema-driven msgpack codec for Terraform values (the DynamicValue.msgpack wire form). The type decides
 * how bytes are read; objects are written with exactly one entry per attribute, because Terraform counts
 * them. Unknown = any msgpack extension; extension type 12 carries refinements.
 */
import { CloudtaserError } from '../../runtime/core/errors.js';
import { type CtyType, typeFromJson } from './types.js';
import { BigNumber, Dynamic, type Refinements, record, Unknown, unknown, type Value } from './values.js';

const REFINED_UNKNOWN_EXT = 12;
const MAX_DEPTH = 64;
/**
 * Values one decode may produce. A byte per value is all the format needs, so without a bound a 200 MB list of
 * nils would become 200 million JS values and take the provider past its heap limit; no configuration this
 * provider reads comes near it.
 */
const MAX_VALUES = 1_000_000;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function protocolError(message: string, path: string): CloudtaserError {
  return new CloudtaserError(
    'CT_PROVIDER_PROTOCOL',
    `could not decode the value Terraform sent at ${path || 'the top level'}: ${message}`,
  );
}

// ---------------------------------------------------------------- writing

class Writer {
  buf = new Uint8Array(256);
  view = new DataView(this.buf.buffer);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  nil(): void {
    this.u8(0xc0);
  }
  str(text: string): void {
    const bytes = textEncoder.encode(text.normalize('NFC'));
    const n = bytes.length;
    if (n < 32) this.u8(0xa0 | n);
    else if (n < 0x100) {
      this.u8(0xd9);
      this.u8(n);
    } else if (n < 0x10000) {
      this.u8(0xda);
      this.u16(n);
    } else {
      this.u8(0xdb);
      this.u32(n);
    }
    this.raw(bytes);
  }
  bin(bytes: Uint8Array): void {
    const n = bytes.length;
    if (n < 0x100) {
      this.u8(0xc4);
      this.u8(n);
    } else if (n < 0x10000) {
      this.u8(0xc5);
      this.u16(n);
    } else {
      this.u8(0xc6);
      this.u32(n);
    }
    this.raw(bytes);
  }
  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) {
      this.u8(0xdc);
      this.u16(n);
    } else {
      this.u8(0xdd);
      this.u32(n);
    }
  }
  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n < 0x10000) {
      this.u8(0xde);
      this.u16(n);
    } else {
      this.u8(0xdf);
      this.u32(n);
    }
  }
  int(v: number): void {
    if (v >= 0) {
      if (v < 128) this.u8(v);
      else if (v < 0x100) {
        this.u8(0xcc);
        this.u8(v);
      } else if (v < 0x10000) {
        this.u8(0xcd);
        this.u16(v);
      } else if (v < 0x100000000) {
        this.u8(0xce);
        this.u32(v);
      } else {
        this.u8(0xcf);
        this.ensure(8);
        this.view.setBigUint64(this.pos, BigInt(v));
        this.pos += 8;
      }
    } else if (v >= -32) this.u8(v & 0xff);
    else if (v >= -128) {
      this.u8(0xd0);
      this.ensure(1);
      this.view.setInt8(this.pos++, v);
    } else if (v >= -32768) {
      this.u8(0xd1);
      this.ensure(2);
      this.view.setInt16(this.pos, v);
      this.pos += 2;
    } else if (v >= -2147483648) {
      this.u8(0xd2);
      this.ensure(4);
      this.view.setInt32(this.pos, v);
      this.pos += 4;
    } else {
      this.u8(0xd3);
      this.ensure(8);
      this.view.setBigInt64(this.pos, BigInt(v));
      this.pos += 8;
    }
  }
  float64(v: number): void {
    this.u8(0xcb);
    this.ensure(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }
  ext(type: number, payload: Uint8Array): void {
    const n = payload.length;
    const fixed: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
    if (fixed[n] !== undefined) this.u8(fixed[n]);
    else if (n < 0x100) {
      this.u8(0xc7);
      this.u8(n);
    } else {
      this.u8(0xc8);
      this.u16(n);
    }
    this.u8(type);
    this.raw(payload);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** Encodes a value of `type` as Terraform expects it. Missing object attributes are written as null. */
export function encodeMsgpack(value: Value | undefined, type: CtyType): Uint8Array {
  const writer = new Writer();
  writeValue(writer, value ?? null, type, '');
  return writer.finish();
}

function writeValue(w: Writer, value: Value, type: CtyType, path: string): void {
  if (value === null) {
    w.nil();
    return;
  }
  if (value instanceof Unknown) {
    writeUnknown(w, value, type);
    return;
  }
  if (type === 'dynamic') {
    const dynamic = value instanceof Dynamic ? value : new Dynamic(impliedType(value, path), value);
    w.arrayHeader(2);
    w.bin(textEncoder.encode(JSON.stringify(dynamic.type)));
    writeValue(w, dynamic.value, dynamic.type, path);
    return;
  }
  if (type === 'string') {
    if (typeof value !== 'string') throw encodeError(path, 'a string', value);
    w.str(value);
    return;
  }
  if (type === 'bool') {
    if (typeof value !== 'boolean') throw encodeError(path, 'a bool', value);
    w.u8(value ? 0xc3 : 0xc2);
    return;
  }
  if (type === 'number') {
    if (value instanceof BigNumber) {
      w.str(value.text);
      return;
    }
    if (typeof value !== 'number' || Number.isNaN(value)) throw encodeError(path, 'a number', value);
    if (Number.isSafeInteger(value)) {
      w.int(value);
      return;
    }
    w.float64(value);
    return;
  }
  const [kind, inner] = type;
  if (kind === 'list' || kind === 'set' || kind === 'tuple') {
    if (!Array.isArray(value)) throw encodeError(path, `a ${kind}`, value);
    w.arrayHeader(value.length);
    value.forEach((element, i) => {
      const elementType = kind === 'tuple' ? (inner as readonly CtyType[])[i] : (inner as CtyType);
      if (elementType === undefined)
        throw encodeError(path, `a tuple of ${(inner as CtyType[]).length}`, value);
      writeValue(w, element, elementType, `${path}[${i}]`);
    });
    return;
  }
  if (
    typeof value !== 'object' ||
    Array.isArray(value) ||
    value instanceof BigNumber ||
    value instanceof Dynamic
  ) {
    throw encodeError(path, `a ${kind}`, value);
  }
  const entries = value as Record<string, Value>;
  if (kind === 'map') {
    const keys = Object.keys(entries).sort();
    w.mapHeader(keys.length);
    for (const key of keys) {
      w.str(key);
      writeValue(w, entries[key], inner as CtyType, `${path}[${JSON.stringify(key)}]`);
    }
    return;
  }
  const attributes = inner as Record<string, CtyType>;
  for (const key of Object.keys(entries)) {
    if (!Object.hasOwn(attributes, key))
      throw encodeError(`${path}.${key}`, 'no attribute (not in the schema)', key);
  }
  const names = Object.keys(attributes).sort();
  w.mapHeader(names.length);
  for (const name of names) {
    w.str(name);
    writeValue(
      w,
      Object.hasOwn(entries, name) ? entries[name] : null,
      attributes[name],
      path ? `${path}.${name}` : name,
    );
  }
}

function writeUnknown(w: Writer, value: Unknown, type: CtyType): void {
  const r = value.refinements;
  const entries: [number, (x: Writer) => void][] = [];
  if (r.notNull) entries.push([1, (x) => x.u8(0xc2)]);
  if (r.stringPrefix && type === 'string') entries.push([2, (x) => x.str(r.stringPrefix!)]);
  if (type === 'number') {
    for (const [key, bound] of [
      [3, r.numberLower],
      [4, r.numberUpper],
    ] as const) {
      if (bound)
        entries.push([
          key,
          (x) => {
            x.arrayHeader(2);
            writeValue(x, bound.value, 'number', '');
            x.u8(bound.inclusive ? 0xc3 : 0xc2);
          },
        ]);
    }
  }
  if (Array.isArray(type) && type[0] !== 'object' && type[0] !== 'tuple') {
    if (r.lengthMin !== undefined) entries.push([5, (x) => x.int(r.lengthMin!)]);
    if (r.lengthMax !== undefined) entries.push([6, (x) => x.int(r.lengthMax!)]);
  }
  // Terraform rejects refinement extension payloads that are empty maps, so plain unknown is d4 00 00.
  if (entries.length === 0) {
    w.ext(0, new Uint8Array([0]));
    return;
  }
  const payload = new Writer();
  payload.mapHeader(entries.length);
  for (const [key, write] of entries) {
    payload.int(key);
    write(payload);
  }
  w.ext(REFINED_UNKNOWN_EXT, payload.finish());
}

function impliedType(value: Value, path: string): CtyType {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number' || value instanceof BigNumber) return 'number';
  if (typeof value === 'boolean') return 'bool';
  throw encodeError(path, 'a Dynamic(type, value) for a dynamic attribute', value);
}

function encodeError(path: string, expected: string, got: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_INTERNAL',
    `cannot encode ${describe(got)} at ${path || 'the top level'}: expected ${expected}`,
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

// ---------------------------------------------------------------- reading

class Reader {
  pos = 0;
  values = 0;
  readonly view: DataView;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number, path: string): void {
    if (this.pos + n > this.buf.length) throw protocolError('the msgpack data is truncated', path);
  }
  u8(path: string): number {
    this.need(1, path);
    return this.buf[this.pos++];
  }
  peek(path: string): number {
    this.need(1, path);
    return this.buf[this.pos];
  }
  u16(path: string): number {
    this.need(2, path);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(path: string): number {
    this.need(4, path);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(n: number, path: string): Uint8Array {
    this.need(n, path);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** Decodes msgpack bytes of `type`. Trailing bytes, wrong kinds and unknown attributes are errors. */
export function decodeMsgpack(bytes: Uint8Array, type: CtyType): Value {
  const reader = new Reader(bytes);
  const value = readValue(reader, type, '', 0);
  if (reader.pos !== bytes.length) throw protocolError('extra bytes after the value', '');
  return value;
}

function readValue(r: Reader, type: CtyType, path: string, depth: number): Value {
  if (depth > MAX_DEPTH) throw protocolError(`nesting deeper than ${MAX_DEPTH}`, path);
  if (++r.values > MAX_VALUES) throw protocolError(`more than ${MAX_VALUES} values in one message`, path);
  const head = r.peek(path);
  if (head === 0xc0) {
    r.pos++;
    return null;
  }
  if (isExtHead(head)) return readUnknown(r, type, path);
  if (type === 'dynamic') {
    const n = readArrayHeader(r, path);
    if (n !== 2) throw protocolError('a dynamic value must be a [type, value] pair', path);
    const typeBytes = readBinOrStr(r, path);
    let concrete: CtyType;
    try {
      concrete = typeFromJson(JSON.parse(textDecoder.decode(typeBytes)));
    } catch {
      throw protocolError('the type of a dynamic value is not a JSON type constraint', path);
    }
    return new Dynamic(concrete, readValue(r, concrete, path, depth + 1));
  }
  if (type === 'string') return readString(r, path);
  if (type === 'bool') {
    const b = r.u8(path);
    if (b === 0xc2) return false;
    if (b === 0xc3) return true;
    throw protocolError(`expected a bool, got msgpack 0x${b.toString(16)}`, path);
  }
  if (type === 'number') return readNumber(r, path);
  const [kind, inner] = type;
  if (kind === 'list' || kind === 'set' || kind === 'tuple') {
    const n = readArrayHeader(r, path);
    if (kind === 'tuple' && n !== (inner as readonly CtyType[]).length) {
      throw protocolError(
        `a tuple of ${(inner as CtyType[]).length} elements is required (${n} given)`,
        path,
      );
    }
    const out: Value[] = [];
    for (let i = 0; i < n; i++) {
      const elementType = kind === 'tuple' ? (inner as readonly CtyType[])[i] : (inner as CtyType);
      out.push(readValue(r, elementType, `${path}[${i}]`, depth + 1));
    }
    return out;
  }
  const n = readMapHeader(r, path);
  const out = record();
  if (kind === 'map') {
    for (let i = 0; i < n; i++) {
      const key = readString(r, path);
      out[key] = readValue(r, inner as CtyType, `${path}[${JSON.stringify(key)}]`, depth + 1);
    }
    return out;
  }
  const attributes = inner as Record<string, CtyType>;
  for (let i = 0; i < n; i++) {
    const key = readString(r, path);
    if (!Object.hasOwn(attributes, key))
      throw protocolError(`unsupported attribute ${JSON.stringify(key)}`, path);
    out[key] = readValue(r, attributes[key], path ? `${path}.${key}` : key, depth + 1);
  }
  for (const name of Object.keys(attributes)) if (!Object.hasOwn(out, name)) out[name] = null;
  return out;
}

function isExtHead(head: number): boolean {
  return (head >= 0xd4 && head <= 0xd8) || head === 0xc7 || head === 0xc8 || head === 0xc9;
}

function readUnknown(r: Reader, type: CtyType, path: string): Unknown {
  const head = r.u8(path);
  let n: number;
  if (head >= 0xd4 && head <= 0xd8) n = 1 << (head - 0xd4);
  else if (head === 0xc7) n = r.u8(path);
  else if (head === 0xc8) n = r.u16(path);
  else n = r.u32(path);
  const extType = r.u8(path);
  const payload = r.bytes(n, path);
  if (extType !== REFINED_UNKNOWN_EXT) return unknown;
  return new Unknown(readRefinements(payload, type, path));
}

function readRefinements(payload: Uint8Array, type: CtyType, path: string): Refinements {
  const r = new Reader(payload);
  const n = readMapHeader(r, path);
  const out: {
    notNull?: boolean;
    stringPrefix?: string;
    numberLower?: { value: number | BigNumber; inclusive: boolean };
    numberUpper?: { value: number | BigNumber; inclusive: boolean };
    lengthMin?: number;
    lengthMax?: number;
  } = {};
  for (let i = 0; i < n; i++) {
    const key = readNumber(r, path);
    switch (key) {
      case 1: {
        const b = r.u8(path);
        if (b === 0xc2) out.notNull = true;
        break;
      }
      case 2:
        out.stringPrefix = readString(r, path);
        break;
      case 3:
      case 4: {
        if (readArrayHeader(r, path) !== 2)
          throw protocolError('a number bound must be [number, inclusive]', path);
        const value = readNumber(r, path);
        const inclusive = readValue(r, 'bool', path, 0) === true;
        if (key === 3) out.numberLower = { value, inclusive };
        else out.numberUpper = { value, inclusive };
        break;
      }
      case 5:
      case 6: {
        const length = readNumber(r, path);
        if (typeof length !== 'number')
          throw protocolError('a collection length bound is not an integer', path);
        if (key === 5) out.lengthMin = length;
        else out.lengthMax = length;
        break;
      }
      default:
        // Refinements newer than this code: skip them; the value stays a valid unknown.
        skipValue(r, path, 0);
    }
  }
  void type;
  return out;
}

function readArrayHeader(r: Reader, path: string): number {
  const head = r.u8(path);
  if ((head & 0xf0) === 0x90) return head & 0x0f;
  if (head === 0xdc) return r.u16(path);
  if (head === 0xdd) return checkedCount(r, r.u32(path), path);
  throw protocolError(`expected an array, got msgpack 0x${head.toString(16)}`, path);
}

function readMapHeader(r: Reader, path: string): number {
  const head = r.u8(path);
  if ((head & 0xf0) === 0x80) return head & 0x0f;
  if (head === 0xde) return r.u16(path);
  if (head === 0xdf) return checkedCount(r, r.u32(path), path);
  throw protocolError(`expected a map, got msgpack 0x${head.toString(16)}`, path);
}

/** Every element takes at least one byte, so a count beyond the remaining bytes is a lie. */
function checkedCount(r: Reader, n: number, path: string): number {
  if (n > r.buf.length - r.pos)
    throw protocolError(`a collection claims ${n} elements but the data is shorter`, path);
  return n;
}

function readString(r: Reader, path: string): string {
  const head = r.u8(path);
  let n: number;
  if ((head & 0xe0) === 0xa0) n = head & 0x1f;
  else if (head === 0xd9) n = r.u8(path);
  else if (head === 0xda) n = r.u16(path);
  else if (head === 0xdb) n = r.u32(path);
  else throw protocolError(`expected a string, got msgpack 0x${head.toString(16)}`, path);
  try {
    return textDecoder.decode(r.bytes(n, path));
  } catch (err) {
    if (err instanceof CloudtaserError) throw err;
    throw protocolError('a string is not valid UTF-8', path);
  }
}

function readBinOrStr(r: Reader, path: string): Uint8Array {
  const head = r.peek(path);
  if (head === 0xc4 || head === 0xc5 || head === 0xc6) {
    r.pos++;
    const n = head === 0xc4 ? r.u8(path) : head === 0xc5 ? r.u16(path) : r.u32(path);
    return r.bytes(n, path);
  }
  return textEncoder.encode(readString(r, path));
}

const DECIMAL = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$/;

function readNumber(r: Reader, path: string): number | BigNumber {
  const head = r.u8(path);
  if (head < 0x80) return head;
  if (head >= 0xe0) return head - 0x100;
  switch (head) {
    case 0xcc:
      return r.u8(path);
    case 0xcd:
      return r.u16(path);
    case 0xce:
      return r.u32(path);
    case 0xcf: {
      r.need(8, path);
      const v = r.view.getBigUint64(r.pos);
      r.pos += 8;
      return bigToNumber(v);
    }
    case 0xd0:
      r.need(1, path);
      return r.view.getInt8(r.pos++);
    case 0xd1: {
      r.need(2, path);
      const v = r.view.getInt16(r.pos);
      r.pos += 2;
      return v;
    }
    case 0xd2: {
      r.need(4, path);
      const v = r.view.getInt32(r.pos);
      r.pos += 4;
      return v;
    }
    case 0xd3: {
      r.need(8, path);
      const v = r.view.getBigInt64(r.pos);
      r.pos += 8;
      return bigToNumber(v);
    }
    case 0xca: {
      r.need(4, path);
      const v = r.view.getFloat32(r.pos);
      r.pos += 4;
      return v;
    }
    case 0xcb: {
      r.need(8, path);
      const v = r.view.getFloat64(r.pos);
      r.pos += 8;
      return v;
    }
    default: {
      r.pos--;
      // Terraform sends numbers that do not fit a float64 exactly as decimal strings.
      const text = readString(r, path);
      if (!DECIMAL.test(text))
        throw protocolError(`${JSON.stringify(text.slice(0, 40))} is not a number`, path);
      return decimalToNumber(text);
    }
  }
}

function bigToNumber(v: bigint): number | BigNumber {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : new BigNumber(v.toString());
}

/**
 * Terraform only sends a number as text when no int64 or float64 holds it exactly, so text stays text
 * (a BigNumber) unless it is a safe integer; turning "0.1" into a double would change the value and
 * Terraform would reject the plan as not matching the configuration.
 */
export function decimalToNumber(text: string): number | BigNumber {
  if (/^-?[0-9]+$/.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n;
  }
  return new BigNumber(text);
}

function skipValue(r: Reader, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw protocolError('refinement nesting too deep', path);
  const head = r.peek(path);
  if (head === 0xc0 || head === 0xc2 || head === 0xc3) {
    r.pos++;
    return;
  }
  if (isExtHead(head)) {
    readUnknown(r, 'dynamic', path);
    return;
  }
  if ((head & 0xf0) === 0x90 || head === 0xdc || head === 0xdd) {
    const n = readArrayHeader(r, path);
    for (let i = 0; i < n; i++) skipValue(r, path, depth + 1);
    return;
  }
  if ((head & 0xf0) === 0x80 || head === 0xde || head === 0xdf) {
    const n = readMapHeader(r, path);
    for (let i = 0; i < 2 * n; i++) skipValue(r, path, depth + 1);
    return;
  }
  if (head === 0xc4 || head === 0xc5 || head === 0xc6) {
    readBinOrStr(r, path);
    return;
  }
  if ((head & 0xe0) === 0xa0 || head === 0xd9 || head === 0xda || head === 0xdb) {
    readString(r, path);
    return;
  }
  readNumber(r, path);
}
