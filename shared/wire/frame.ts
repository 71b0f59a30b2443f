// Generic checksummed frame, little-endian:
//   magic  4 bytes ASCII
//   format u32
//   body   u32 / f64 / string (u32 byte length, UTF-8, zero pad to 4) / floats (u32 count, f32 data) /
//          bytes (u32 byte length, raw, zero pad to 4)
//   check  u32 checksum32 of every byte before it
// Every field is a multiple of 4 bytes, so float arrays start 4-aligned within the frame and decode
// as zero-copy views (aliasing the input) when the input itself is 4-aligned.
import { checksum32 } from './checksum';

export type WireErrorReason = 'truncated' | 'magic' | 'format' | 'checksum' | 'length' | 'lease-id' | 'codec' | 'segments' | 'domain';

export class WireError extends Error {
  constructor(readonly reason: WireErrorReason, message: string) {
    super(message);
    this.name = 'WireError';
  }
}

const HEADER_BYTES = 8;
const CHECKSUM_BYTES = 4;
/** A frame's bytes besides its body: magic, format, checksum. */
export const FRAME_FIXED_BYTES = HEADER_BYTES + CHECKSUM_BYTES;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const pad4 = (n: number) => Math.ceil(n / 4) * 4; // not bitwise: n may be a hostile u32
const hex = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;

export const stringBytes = (s: string): number => 4 + pad4(utf8.encode(s).byteLength);
export const floatsBytes = (n: number): number => 4 + 4 * n;
export const rawBytes = (n: number): number => 4 + pad4(n);

export class FrameWriter {
  private readonly buf: Uint8Array<ArrayBuffer>;
  private readonly view: DataView;
  private pos = 0;

  /** `bodyBytes` is the exact size of the body fields; header and checksum are added here. */
  constructor(magic: string, format: number, bodyBytes: number) {
    if (!/^[\x20-\x7e]{4}$/.test(magic)) throw new Error(`wire: magic '${magic}' must be 4 printable ASCII characters`);
    this.buf = new Uint8Array(HEADER_BYTES + bodyBytes + CHECKSUM_BYTES);
    this.view = new DataView(this.buf.buffer);
    for (let i = 0; i < 4; i++) this.buf[i] = magic.charCodeAt(i);
    this.pos = 4;
    this.u32(format);
  }

  u32(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`wire: ${v} does not fit a u32`);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  f64(v: number): void {
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  string(s: string): void {
    const { written } = utf8.encodeInto(s, this.buf.subarray(this.pos + 4, this.buf.byteLength - CHECKSUM_BYTES));
    this.u32(written);
    this.pos += pad4(written); // the pad is already zero: the buffer is fresh
  }

  floats(a: Float32Array): void {
    this.u32(a.length);
    if (LITTLE_ENDIAN_HOST) this.buf.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), this.pos);
    else for (let i = 0; i < a.length; i++) this.view.setFloat32(this.pos + 4 * i, a[i], true);
    this.pos += a.byteLength;
  }

  bytes(b: Uint8Array): void {
    this.u32(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += pad4(b.byteLength); // the pad is already zero: the buffer is fresh
  }

  finish(): Uint8Array<ArrayBuffer> {
    const end = this.buf.byteLength - CHECKSUM_BYTES;
    if (this.pos !== end) throw new Error(`wire: wrote ${this.pos - HEADER_BYTES} body bytes, sized for ${end - HEADER_BYTES}`);
    this.view.setUint32(end, checksum32(this.buf.subarray(0, end)), true);
    return this.buf;
  }
}

export class FrameReader {
  private readonly view: DataView;
  private readonly bodyEnd: number;
  private pos = HEADER_BYTES;

  constructor(private readonly input: Uint8Array, magic: string, format: number, private readonly what: string) {
    if (input.byteLength < HEADER_BYTES + CHECKSUM_BYTES) {
      throw new WireError('truncated', `${what}: ${input.byteLength} bytes is shorter than the ${HEADER_BYTES + CHECKSUM_BYTES}-byte minimum`);
    }
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
    this.bodyEnd = input.byteLength - CHECKSUM_BYTES;
    const gotMagic = String.fromCharCode(...input.subarray(0, 4));
    if (gotMagic !== magic) throw new WireError('magic', `${what}: bad magic ${JSON.stringify(gotMagic)} (expected '${magic}')`);
    const gotFormat = this.view.getUint32(4, true);
    if (gotFormat !== format) throw new WireError('format', `${what}: unsupported format ${gotFormat} (this build reads ${format})`);
    const stored = this.view.getUint32(this.bodyEnd, true);
    const computed = checksum32(input.subarray(0, this.bodyEnd));
    if (stored !== computed) throw new WireError('checksum', `${what}: checksum mismatch (stored ${hex(stored)}, computed ${hex(computed)})`);
  }

  private take(n: number, field: string): number {
    if (n > this.bodyEnd - this.pos) {
      throw new WireError('truncated', `${this.what}: ${field} needs ${n} bytes at offset ${this.pos}, ${this.bodyEnd - this.pos} left`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u32(): number {
    return this.view.getUint32(this.take(4, 'u32'), true);
  }

  f64(): number {
    return this.view.getFloat64(this.take(8, 'f64'), true);
  }

  string(): string {
    const n = this.u32();
    const at = this.take(pad4(n), `string of ${n} bytes`);
    try {
      return utf8Decoder.decode(this.input.subarray(at, at + n));
    } catch {
      throw new WireError('format', `${this.what}: string at offset ${at} is not valid UTF-8`);
    }
  }

  floats(): Float32Array {
    const n = this.u32();
    const at = this.take(4 * n, `${n} floats`);
    const start = this.input.byteOffset + at;
    if (LITTLE_ENDIAN_HOST && start % 4 === 0) return new Float32Array(this.input.buffer, start, n);
    if (LITTLE_ENDIAN_HOST) return new Float32Array(this.input.slice(at, at + 4 * n).buffer);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.view.getFloat32(at + 4 * i, true);
    return out;
  }

  /** A view of the bytes (aliasing the input); the pad is skipped unread. */
  bytes(): Uint8Array {
    const n = this.u32();
    const at = this.take(pad4(n), `${n} raw bytes`);
    return this.input.subarray(at, at + n);
  }

  end(): void {
    if (this.pos !== this.bodyEnd) throw new WireError('length', `${this.what}: ${this.bodyEnd - this.pos} unread bytes before the checksum`);
  }
}

/** A frame's first four bytes as text (which frame it claims to be), or '' when it has fewer. */
export const magicOf = (bytes: Uint8Array): string => (bytes.byteLength < 4 ? '' : String.fromCharCode(...bytes.subarray(0, 4)));

/** A frame's stored checksum (its last four bytes), as 8 hex digits: a short name for its exact content. */
export function frameTag(bytes: Uint8Array): string {
  if (bytes.byteLength < HEADER_BYTES + CHECKSUM_BYTES) throw new WireError('truncated', `frame of ${bytes.byteLength} bytes has no checksum`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(bytes.byteLength - CHECKSUM_BYTES, true).toString(16).padStart(8, '0');
}
