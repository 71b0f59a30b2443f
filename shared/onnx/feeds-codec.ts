// Binary framing for "run this graph with these feeds" requests and their outputs (pure TS).
//
// Every frame, little-endian:
//   magic   4 bytes  'ETRQ' (request) or 'ETRS' (outputs)
//   version u32      FRAME_VERSION
//   request only: u32 model byte length, then the model bytes
//   u32 tensor count, then per tensor:
//     u32 name byte length, name (UTF-8)
//     u32 dtype (ONNX code: 1 = float32, 7 = int64)
//     u32 rank, rank × u32 dims
//     data: numel(dims) × 4 or 8 bytes
// Nothing may follow the last tensor. Decoding copies data out, so any byte offset works.
import { numel } from './graph';
import type { Feed } from './session';

export const FRAME_VERSION = 1;
const REQUEST_MAGIC = 'ETRQ';
const OUTPUTS_MAGIC = 'ETRS';
const DTYPE_FLOAT32 = 1;
const DTYPE_INT64 = 7;

export interface RunRequest {
  model: Uint8Array;
  feeds: Record<string, Feed>;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

class Writer {
  private buf: Uint8Array<ArrayBuffer>;
  private view: DataView;
  private pos = 0;

  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
  }

  u32(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`feeds-codec: ${v} does not fit a u32`);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  data(d: Float32Array | BigInt64Array): void {
    if (LITTLE_ENDIAN_HOST) {
      this.bytes(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    } else if (d instanceof Float32Array) {
      for (let i = 0; i < d.length; i++, this.pos += 4) this.view.setFloat32(this.pos, d[i], true);
    } else {
      for (let i = 0; i < d.length; i++, this.pos += 8) this.view.setBigInt64(this.pos, d[i], true);
    }
  }

  finish(): Uint8Array<ArrayBuffer> {
    if (this.pos !== this.buf.byteLength) throw new Error(`feeds-codec: wrote ${this.pos} of ${this.buf.byteLength} bytes`);
    return this.buf;
  }
}

class Reader {
  private readonly view: DataView;
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.byteLength) {
      throw new Error(`feeds-codec: truncated frame: ${what} needs ${n} bytes at offset ${this.pos}, ${this.buf.byteLength - this.pos} left`);
    }
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  data(dtype: number, count: number, what: string): Float32Array | BigInt64Array {
    const size = dtype === DTYPE_FLOAT32 ? 4 : 8;
    this.need(count * size, what);
    const start = this.pos;
    this.pos += count * size;
    if (LITTLE_ENDIAN_HOST) {
      const copy = this.buf.slice(start, start + count * size).buffer;
      return dtype === DTYPE_FLOAT32 ? new Float32Array(copy) : new BigInt64Array(copy);
    }
    if (dtype === DTYPE_FLOAT32) {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = this.view.getFloat32(start + i * 4, true);
      return out;
    }
    const out = new BigInt64Array(count);
    for (let i = 0; i < count; i++) out[i] = this.view.getBigInt64(start + i * 8, true);
    return out;
  }

  end(): void {
    if (this.pos !== this.buf.byteLength) throw new Error(`feeds-codec: ${this.buf.byteLength - this.pos} trailing bytes after the last tensor`);
  }
}

interface EncodedTensor {
  name: Uint8Array;
  feed: Feed;
}

function prepareTensors(tensors: Readonly<Record<string, Feed>>): { list: EncodedTensor[]; size: number } {
  const list: EncodedTensor[] = [];
  let size = 4;
  for (const [name, feed] of Object.entries(tensors)) {
    if (!(feed.data instanceof Float32Array) && !(feed.data instanceof BigInt64Array)) {
      throw new Error(`feeds-codec: tensor '${name}' must be a Float32Array or BigInt64Array`);
    }
    if (feed.data.length !== numel(feed.dims)) {
      throw new Error(`feeds-codec: tensor '${name}' has ${feed.data.length} values, dims [${feed.dims.join(',')}] need ${numel(feed.dims)}`);
    }
    const encodedName = utf8.encode(name);
    list.push({ name: encodedName, feed });
    size += 4 + encodedName.byteLength + 4 + 4 + 4 * feed.dims.length + feed.data.byteLength;
  }
  return { list, size };
}

function writeHeader(w: Writer, magic: string): void {
  w.bytes(utf8.encode(magic));
  w.u32(FRAME_VERSION);
}

function writeTensors(w: Writer, list: readonly EncodedTensor[]): void {
  w.u32(list.length);
  for (const { name, feed } of list) {
    w.u32(name.byteLength);
    w.bytes(name);
    w.u32(feed.data instanceof Float32Array ? DTYPE_FLOAT32 : DTYPE_INT64);
    w.u32(feed.dims.length);
    for (const d of feed.dims) w.u32(d);
    w.data(feed.data);
  }
}

function readHeader(r: Reader, magic: string, what: string): void {
  const got = r.bytes(4, 'magic');
  const gotText = String.fromCharCode(...got);
  if (gotText !== magic) throw new Error(`feeds-codec: not a ${what} frame (magic '${gotText}', expected '${magic}')`);
  const version = r.u32('version');
  if (version !== FRAME_VERSION) throw new Error(`feeds-codec: unsupported frame version ${version} (this build reads ${FRAME_VERSION})`);
}

function readTensors(r: Reader): Record<string, Feed> {
  const count = r.u32('tensor count');
  const out: Record<string, Feed> = {};
  for (let i = 0; i < count; i++) {
    const nameLength = r.u32(`tensor ${i} name length`);
    const name = utf8Decoder.decode(r.bytes(nameLength, `tensor ${i} name`));
    const dtype = r.u32(`tensor '${name}' dtype`);
    if (dtype !== DTYPE_FLOAT32 && dtype !== DTYPE_INT64) throw new Error(`feeds-codec: tensor '${name}' has unsupported dtype code ${dtype}`);
    const rank = r.u32(`tensor '${name}' rank`);
    const dims: number[] = [];
    for (let k = 0; k < rank; k++) dims.push(r.u32(`tensor '${name}' dim ${k}`));
    if (name in out) throw new Error(`feeds-codec: tensor '${name}' appears twice`);
    out[name] = { data: r.data(dtype, numel(dims), `tensor '${name}' data`), dims };
  }
  return out;
}

export function encodeRunRequest(req: RunRequest): Uint8Array<ArrayBuffer> {
  const { list, size } = prepareTensors(req.feeds);
  const w = new Writer(4 + 4 + 4 + req.model.byteLength + size);
  writeHeader(w, REQUEST_MAGIC);
  w.u32(req.model.byteLength);
  w.bytes(req.model);
  writeTensors(w, list);
  return w.finish();
}

export function decodeRunRequest(bytes: Uint8Array): RunRequest {
  const r = new Reader(bytes);
  readHeader(r, REQUEST_MAGIC, 'run request');
  const model = r.bytes(r.u32('model length'), 'model');
  const feeds = readTensors(r);
  r.end();
  return { model, feeds };
}

export function encodeOutputs(outputs: Readonly<Record<string, Feed>>): Uint8Array<ArrayBuffer> {
  const { list, size } = prepareTensors(outputs);
  const w = new Writer(4 + 4 + size);
  writeHeader(w, OUTPUTS_MAGIC);
  writeTensors(w, list);
  return w.finish();
}

export function decodeOutputs(bytes: Uint8Array): Record<string, Feed> {
  const r = new Reader(bytes);
  readHeader(r, OUTPUTS_MAGIC, 'outputs');
  const outputs = readTensors(r);
  r.end();
  return outputs;
}
