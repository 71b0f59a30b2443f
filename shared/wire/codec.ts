// Lossy encodings of a flat float vector for the wire: fp16, int8 with one scale per block, and top-k
// (the largest-magnitude fraction of each tensor's entries, as index/value pairs). Blocks and top-k work
// within each tensor (`segments`: the tensors' sizes in flat order), so one large tensor's scale never
// swamps a small one's values. Decoding gives the dense Float32Array the receiver computes with; a
// sender keeps what it lost (error-feedback.ts) by decoding its own payload.

import { WireError } from './frame';

export const DENSE_CODECS = ['fp32', 'fp16', 'int8'] as const;
export type DenseCodec = (typeof DENSE_CODECS)[number];
export const GRADIENT_CODECS = [...DENSE_CODECS, 'topk'] as const;
export type Codec = (typeof GRADIENT_CODECS)[number];

/** A codec with its parameter (top-k's kept fraction of each tensor's entries). */
export interface CodecSpec {
  readonly codec: Codec;
  /** top-k only: the fraction of each tensor's entries sent (at least one each). */
  readonly topK?: number;
}

/** Values per int8 block (one f32 scale each, within a tensor). */
export const INT8_BLOCK = 128;

const codecId: Record<Codec, number> = { fp32: 0, fp16: 1, int8: 2, topk: 3 };
export const codecOfId = (id: number): Codec | undefined => GRADIENT_CODECS[id];
export const idOfCodec = (c: Codec): number => codecId[c];

const pad4 = (n: number) => Math.ceil(n / 4) * 4;

/** Entries top-k keeps of a tensor of `size` values. */
export const topKOf = (size: number, fraction: number): number => Math.min(size, Math.max(1, Math.ceil(fraction * size)));

/** The payload's byte length (a multiple of 4) for a vector of these segments. */
export function payloadBytes(spec: CodecSpec, segments: readonly number[]): number {
  const n = segments.reduce((a, b) => a + b, 0);
  switch (spec.codec) {
    case 'fp32':
      return 4 * n;
    case 'fp16':
      return pad4(2 * n);
    case 'int8':
      return 4 * segments.reduce((a, s) => a + Math.ceil(s / INT8_BLOCK), 0) + pad4(n);
    case 'topk':
      return 8 * segments.reduce((a, s) => a + topKOf(s, fractionOf(spec)), 0);
  }
}

function fractionOf(spec: CodecSpec): number {
  const f = spec.topK ?? NaN;
  if (!(f > 0 && f <= 1)) throw new RangeError(`top-k fraction ${spec.topK} must be in (0, 1]`);
  return f;
}

function checkSegments(n: number, segments: readonly number[]): void {
  let total = 0;
  for (const s of segments) {
    if (!Number.isInteger(s) || s < 1) throw new RangeError(`codec: segment size ${s} is not a positive integer`);
    total += s;
  }
  if (total !== n) throw new RangeError(`codec: segments cover ${total} values, the vector has ${n}`);
}

// ---------- fp16 (IEEE binary16, round to nearest even) ----------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow: Inf
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into the exponent: correct, up to Inf
  return sign | r;
}

const HALF_TO_FLOAT = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? sign * m * 2 ** -24 : e === 0x1f ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export const fromHalf = (h: number): number => HALF_TO_FLOAT[h];

// Typed-array loops of their own (not a DataView per value inside one switch): V8 optimises these
// several times faster, Node 20's most of all.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function halvesInto(out: Uint16Array, x: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = toHalf(x[i]);
}

function floatsFromHalves(out: Float32Array, h: Uint16Array): void {
  for (let i = 0; i < h.length; i++) out[i] = HALF_TO_FLOAT[h[i]];
}

// ---------- encode / decode ----------

/** `x` as `spec`'s payload (little-endian, 4-byte aligned length). */
export function encodeValues(x: Float32Array, spec: CodecSpec, segments: readonly number[]): Uint8Array<ArrayBuffer> {
  checkSegments(x.length, segments);
  const out = new Uint8Array(payloadBytes(spec, segments));
  const view = new DataView(out.buffer);
  switch (spec.codec) {
    case 'fp32':
      if (LITTLE_ENDIAN_HOST) new Float32Array(out.buffer, 0, x.length).set(x);
      else for (let i = 0; i < x.length; i++) view.setFloat32(4 * i, x[i], true);
      break;
    case 'fp16':
      if (LITTLE_ENDIAN_HOST) halvesInto(new Uint16Array(out.buffer, 0, x.length), x);
      else for (let i = 0; i < x.length; i++) view.setUint16(2 * i, toHalf(x[i]), true);
      break;
    case 'int8': {
      // Scales first (f32 per block), then the values (i8), blocks restarting at each segment.
      const scales = segments.reduce((a, s) => a + Math.ceil(s / INT8_BLOCK), 0);
      const q = new Int8Array(out.buffer, 4 * scales, x.length);
      let block = 0;
      let start = 0;
      for (const size of segments) {
        for (let b = start; b < start + size; b += INT8_BLOCK) {
          const end = Math.min(b + INT8_BLOCK, start + size);
          let max = 0;
          for (let i = b; i < end; i++) max = Math.max(max, Math.abs(x[i]));
          const scale = Math.fround(max / 127);
          view.setFloat32(4 * block++, scale, true);
          const inv = scale > 0 ? 1 / scale : 0;
          for (let i = b; i < end; i++) q[i] = Math.max(-127, Math.min(127, Math.round(x[i] * inv)));
        }
        start += size;
      }
      break;
    }
    case 'topk': {
      // Per segment, its k largest |x| as (u32 flat index, f32 value), indices ascending.
      let at = 0;
      let start = 0;
      const fraction = fractionOf(spec);
      for (const size of segments) {
        const picked = largest(x, start, size, topKOf(size, fraction));
        for (const i of picked) {
          view.setUint32(at, i, true);
          view.setFloat32(at + 4, x[i], true);
          at += 8;
        }
        start += size;
      }
      break;
    }
  }
  return out;
}

/** Flat indices of the `k` largest |x| in [start, start + size), ascending (ties: lower index first). */
function largest(x: Float32Array, start: number, size: number, k: number): Uint32Array {
  const out = new Uint32Array(k);
  if (k === size) {
    for (let i = 0; i < size; i++) out[i] = start + i;
    return out;
  }
  // Threshold at the k-th largest magnitude, then keep k entries at or above it.
  const mags = new Float32Array(size);
  for (let i = 0; i < size; i++) mags[i] = Math.abs(x[start + i]);
  const threshold = kthSmallest(mags.slice(), size - k);
  let n = 0;
  for (let i = 0; i < size && n < k; i++) if (mags[i] > threshold) out[n++] = start + i;
  for (let i = 0; i < size && n < k; i++) if (mags[i] === threshold) out[n++] = start + i;
  return out.sort();
}

/** The value of rank `k` (0-based) in ascending order; reorders `a` (quickselect, expected linear time). */
function kthSmallest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/**
 * The dense vector `payload` stands for. A payload from anyone is checked: its length, finite
 * non-negative int8 scales, top-k indices inside their segment and strictly ascending.
 */
export function decodeValues(payload: Uint8Array, n: number, spec: CodecSpec, segments: readonly number[], what = 'values'): Float32Array {
  checkSegments(n, segments);
  const expected = payloadBytes(spec, segments);
  if (payload.byteLength !== expected) throw new WireError('length', `${what}: ${spec.codec} payload of ${payload.byteLength} bytes, ${n} values need ${expected}`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const x = new Float32Array(n);
  switch (spec.codec) {
    case 'fp32':
      if (LITTLE_ENDIAN_HOST && payload.byteOffset % 4 === 0) x.set(new Float32Array(payload.buffer, payload.byteOffset, n));
      else for (let i = 0; i < n; i++) x[i] = view.getFloat32(4 * i, true);
      break;
    case 'fp16':
      if (LITTLE_ENDIAN_HOST && payload.byteOffset % 2 === 0) floatsFromHalves(x, new Uint16Array(payload.buffer, payload.byteOffset, n));
      else for (let i = 0; i < n; i++) x[i] = HALF_TO_FLOAT[view.getUint16(2 * i, true)];
      break;
    case 'int8': {
      const scales = segments.reduce((a, s) => a + Math.ceil(s / INT8_BLOCK), 0);
      const q = new Int8Array(payload.buffer, payload.byteOffset + 4 * scales, n);
      let block = 0;
      let start = 0;
      for (const size of segments) {
        for (let b = start; b < start + size; b += INT8_BLOCK) {
          const scale = view.getFloat32(4 * block, true);
          if (!(scale >= 0 && scale < Infinity)) throw new WireError('format', `${what}: int8 block ${block} has scale ${scale}`);
          block++;
          const end = Math.min(b + INT8_BLOCK, start + size);
          for (let i = b; i < end; i++) x[i] = q[i] * scale;
        }
        start += size;
      }
      break;
    }
    case 'topk': {
      let at = 0;
      let start = 0;
      const fraction = fractionOf(spec);
      for (const size of segments) {
        let previous = -1;
        for (let j = topKOf(size, fraction); j > 0; j--) {
          const i = view.getUint32(at, true);
          if (i < start || i >= start + size || i <= previous) {
            throw new WireError('format', `${what}: top-k index ${i} is outside its tensor's ${start}..${start + size - 1} or not ascending`);
          }
          x[i] = view.getFloat32(at + 4, true);
          previous = i;
          at += 8;
        }
        start += size;
      }
      break;
    }
  }
  return x;
}

/** What the receiver of `x` sent with `spec` computes with (the decode of its encoding). */
export function roundTrip(x: Float32Array, spec: CodecSpec, segments: readonly number[]): Float32Array {
  if (spec.codec === 'fp32') return x.slice();
  return decodeValues(encodeValues(x, spec, segments), x.length, spec, segments);
}

/** How a vector travels: its codec, and the tensor sizes (flat order) that blocks and top-k work within. */
export interface ValueEncoding {
  readonly codec: CodecSpec;
  readonly segments: readonly number[];
}
