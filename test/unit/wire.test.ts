import { describe, expect, it } from 'vitest';
import {
  checksum32, decodeEval, decodeGradient, decodeParams, encodeEval, encodeGradient, encodeGradientAs, encodeParams, gradientFrameSize,
  FrameWriter, WireError, GRADIENT_MAGIC, GRADIENT_FORMAT, stringBytes, type GradientSubmission, type ValueEncoding, type WireErrorReason,
} from '../../shared/wire';

const utf8 = new TextEncoder();
const hex = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;

// Deterministic pseudo-random floats (xorshift32).
function floats(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x / 0xffffffff - 0.5) * 2e-3;
  }
  return out;
}

// Straightforward byte-by-byte reference of the word-wise FNV-1a variant, in BigInt arithmetic.
function referenceChecksum(bytes: Uint8Array): number {
  let h = 0x811c9dc5n;
  const mix = (v: number) => { h = ((h ^ BigInt(v)) * 0x01000193n) & 0xffffffffn; };
  const words = Math.floor(bytes.length / 4);
  for (let i = 0; i < words; i++) mix(bytes[4 * i] | (bytes[4 * i + 1] << 8) | (bytes[4 * i + 2] << 16) | ((bytes[4 * i + 3] << 24) >>> 0));
  for (let i = words * 4; i < bytes.length; i++) mix(bytes[i]);
  return Number(h);
}

/** Copy `bytes` so that it starts at byteOffset `offset` of a larger buffer. */
function at(bytes: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(bytes.byteLength + offset + 3), offset, bytes.byteLength);
  out.set(bytes);
  return out;
}

/** Recompute the trailing checksum so that a deliberately malformed frame gets past it. */
function reseal(bytes: Uint8Array): Uint8Array {
  const end = bytes.byteLength - 4;
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(end, checksum32(bytes.subarray(0, end)), true);
  return bytes;
}

function wireError(fn: () => unknown): WireError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WireError);
    return e as WireError;
  }
  throw new Error('expected a WireError, nothing was thrown');
}

function expectReason(fn: () => unknown, reason: WireErrorReason, message?: RegExp): void {
  const e = wireError(fn);
  expect(e.reason).toBe(reason);
  if (message) expect(e.message).toMatch(message);
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Bit-exact float comparison; reports the first differing index (toEqual on 545k elements is slow). */
function expectSameBits(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  const [g, w] = [bits(got), bits(want)];
  let i = 0;
  while (i < w.length && g[i] === w[i]) i++;
  expect(i === w.length ? 'identical' : `differs at ${i}: ${hex(g[i])} vs ${hex(w[i])}`).toBe('identical');
}

const submission = (over: Partial<GradientSubmission> = {}): GradientSubmission => ({
  leaseId: '7f3a0c1e-9b2d-4e5f-8a6b-1c2d3e4f5a6b', version: 12, step: 345, shard: 6, count: 128, loss: 2.302585092994046, correct: 17,
  grads: floats(1000, 3), stats: floats(64, 4), ...over,
});

function expectSameGradient(got: GradientSubmission, want: GradientSubmission): void {
  const { grads, stats, ...scalars } = got;
  const { grads: wantGrads, stats: wantStats, ...wantScalars } = want;
  expect(scalars).toEqual(wantScalars);
  expectSameBits(grads, wantGrads);
  expectSameBits(stats, wantStats);
}

describe('checksum32', () => {
  it('has pinned values: FNV offset basis for empty input, standard FNV-1a for one byte', () => {
    expect(hex(checksum32(new Uint8Array(0)))).toBe('0x811c9dc5');
    expect(hex(checksum32(utf8.encode('a')))).toBe('0xe40c292c');
    expect(hex(checksum32(utf8.encode('abcd')))).toBe('0xec7f6f2c');
    expect(hex(checksum32(utf8.encode('edgetrain')))).toBe('0xda1441d6');
    expect(hex(checksum32(Uint8Array.from({ length: 256 }, (_, i) => i)))).toBe('0x88a6b7c5');
  });

  it('matches a BigInt reference at every length and byte offset (Uint32Array and DataView paths)', () => {
    const data = new Uint8Array(floats(64, 9).buffer);
    for (let len = 0; len <= 37; len++) {
      for (let offset = 0; offset < 4; offset++) {
        const input = at(data.subarray(0, len), offset);
        expect(checksum32(input), `len ${len} offset ${offset}`).toBe(referenceChecksum(data.subarray(0, len)));
      }
    }
  });

  it('detects every single flipped bit and swapped words', () => {
    const data = new Uint8Array(floats(16, 5).buffer.slice(0, 61)); // 15 words + 1 tail byte
    const base = checksum32(data);
    for (let bit = 0; bit < data.length * 8; bit++) {
      const flipped = data.slice();
      flipped[bit >> 3] ^= 1 << (bit & 7);
      expect(checksum32(flipped), `bit ${bit}`).not.toBe(base);
    }
    const swapped = data.slice();
    swapped.set(data.subarray(0, 4), 4);
    swapped.set(data.subarray(4, 8), 0);
    expect(checksum32(swapped)).not.toBe(base);
    expect(checksum32(utf8.encode('abcdefgh'))).not.toBe(checksum32(utf8.encode('efghabcd')));
  });
});

describe('gradient frame', () => {
  it('round-trips, with and without batch-norm stats', () => {
    const s = submission();
    expectSameGradient(decodeGradient(encodeGradient(s)), s);
    const noStats = submission({ stats: new Float32Array(0) });
    const decoded = decodeGradient(encodeGradient(noStats));
    expectSameGradient(decoded, noStats);
    expect(decoded.stats.length).toBe(0);
  });

  it('round-trips a 545,098-float gradient', () => {
    const s = submission({ grads: floats(545_098, 11) });
    const bytes = encodeGradient(s);
    expect(bytes.byteLength).toBe(8 + 4 + 36 + 16 + 8 + 4 + 4 + 4 + 545_098 * 4 + 4 + 64 * 4 + 4);
    expectSameGradient(decodeGradient(bytes), s);
  });

  it('pads lease ids of any length to 4 bytes, and refuses on decoding one that is not a UUID, quoting at most its start', () => {
    for (const leaseId of ['', 'a', 'abc', 'abcde', 'lease/é', 'λ-租约-🚀', 'x'.repeat(1001), '7F3A0C1E-9B2D-4E5F-8A6B-1C2D3E4F5A6B']) {
      const bytes = encodeGradient(submission({ leaseId }));
      expect(bytes.byteLength % 4, leaseId).toBe(0);
      const e = wireError(() => decodeGradient(bytes));
      expect(e.reason).toBe('lease-id');
      expect(e.message.length).toBeLessThan(200);
      expect(wireError(() => decodeEval(encodeEval({ leaseId, version: 0, step: 0, shard: 0, count: 1, lossSum: 1, correct: 0 }))).reason).toBe('lease-id');
    }
  });

  it('preserves NaN, ±Infinity, -0 and denormals bit-exactly', () => {
    const grads = new Float32Array(8);
    new Uint32Array(grads.buffer).set([0x7fc00000, 0x7fa00001, 0xffc12345, 0x7f800000, 0xff800000, 0x80000000, 0x00000001, 0x3f800000]);
    const s = submission({ grads, loss: NaN, stats: Float32Array.of(-Infinity) });
    const got = decodeGradient(encodeGradient(s));
    expectSameBits(got.grads, grads);
    expect(got.loss).toBeNaN();
    expect(got.stats[0]).toBe(-Infinity);
    expect(decodeGradient(encodeGradient(submission({ loss: -0 }))).loss).toBe(-0);
  });

  it('returns zero-copy views of aligned input and copies of unaligned input', () => {
    const s = submission();
    const aligned = at(encodeGradient(s), 8);
    const view = decodeGradient(aligned);
    expect(view.grads.buffer).toBe(aligned.buffer);
    expect(view.stats.buffer).toBe(aligned.buffer);
    for (const offset of [1, 2, 3]) {
      const unaligned = at(encodeGradient(s), offset);
      const copy = decodeGradient(unaligned);
      expect(copy.grads.buffer).not.toBe(unaligned.buffer);
      expectSameGradient(copy, s);
    }
  });

  it('rejects invalid values on encode', () => {
    expect(() => encodeGradient(submission({ step: -1 }))).toThrow(/u32/);
    expect(() => encodeGradient(submission({ count: 1.5 }))).toThrow(/u32/);
    expect(() => encodeGradient(submission({ version: 2 ** 32 }))).toThrow(/u32/);
  });
});

describe("gradient frame: a DANN run's domain section", () => {
  const domain = { loss: 0.6931471805599453, correct: 170 };
  const dense: ValueEncoding = { codec: { codec: 'fp32' }, segments: [1000] };
  const encodings: ValueEncoding[] = [dense, { codec: { codec: 'int8' }, segments: [600, 400] }, { codec: { codec: 'topk', topK: 0.1 }, segments: [1000] }];
  /** Byte offset of the section's presence word: header, lease id (a UUID), four u32s, the loss (f64) and correct (u32). */
  const markerAt = 8 + 40 + 16 + 8 + 4;

  it('round-trips the domain loss and correct count in dense and compressed frames; a frame without them decodes with no domain field', () => {
    for (const e of encodings) {
      const got = decodeGradient(encodeGradientAs(submission({ domain }), e), e);
      expect(got.domain, e.codec.codec).toEqual(domain);
      expect('domain' in decodeGradient(encodeGradientAs(submission(), e), e), e.codec.codec).toBe(false);
    }
    // Every image of both domains classified right is possible.
    expect(decodeGradient(encodeGradient(submission({ domain: { loss: 0, correct: 256 } }))).domain).toEqual({ loss: 0, correct: 256 });
  });

  it('gradientFrameSize is exact with and without the section', () => {
    for (const e of encodings) {
      for (const withDomain of [false, true]) {
        const bytes = encodeGradientAs(submission(withDomain ? { domain } : {}), e);
        expect(gradientFrameSize(e, 64, withDomain), `${e.codec.codec} ${withDomain}`).toBe(bytes.byteLength);
      }
    }
    expect(gradientFrameSize(dense, 64, true) - gradientFrameSize(dense, 64, false)).toBe(12);
  });

  it("refuses a negative, NaN or infinite domain loss, more correct than the shard's 2 × count images, and a presence word other than 0 or 1 (WireError 'domain')", () => {
    for (const bad of [{ loss: -1e-9, correct: 3 }, { loss: NaN, correct: 3 }, { loss: Infinity, correct: 3 }, { loss: -Infinity, correct: 3 }]) {
      for (const e of encodings) expectReason(() => decodeGradient(encodeGradientAs(submission({ domain: bad }), e), e), 'domain', /^gradient frame: domain loss -?\w+(\.\d+)?(e-\d+)? is not a finite non-negative number$/);
    }
    for (const e of encodings) {
      expectReason(() => decodeGradient(encodeGradientAs(submission({ domain: { loss: 0.7, correct: 257 } }), e), e), 'domain', /257 correct domain predictions among the shard's 256 source and target images/);
    }
    const marked = encodeGradient(submission()).slice();
    expect(new DataView(marked.buffer).getUint32(markerAt, true)).toBe(0);
    new DataView(marked.buffer).setUint32(markerAt, 2, true);
    expectReason(() => decodeGradient(reseal(marked)), 'domain', /domain section marker 2/);
  });
});

describe('eval frame', () => {
  it('round-trips', () => {
    const s = { leaseId: '00000000-0000-4000-8000-0000000000e1', version: 3, step: 0, shard: 41, count: 250, lossSum: 575.6462732485114, correct: 249 };
    expect(decodeEval(encodeEval(s))).toEqual(s);
    expect(decodeEval(at(encodeEval(s), 1))).toEqual(s);
  });
});

describe('params frame', () => {
  it('round-trips, aligned (zero-copy) and unaligned (copy)', () => {
    const p = { version: 99, params: floats(545_098, 21), buffers: floats(300, 22) };
    const bytes = encodeParams(p);
    const view = decodeParams(bytes);
    expect(view.version).toBe(99);
    expect(view.params.buffer).toBe(bytes.buffer);
    expectSameBits(view.params, p.params);
    expectSameBits(view.buffers, p.buffers);
    const shifted = at(bytes, 3);
    const copy = decodeParams(shifted);
    expect(copy.params.buffer).not.toBe(shifted.buffer);
    expectSameBits(copy.params, p.params);
    expectSameBits(copy.buffers, p.buffers);
  });

  it('round-trips empty arrays', () => {
    const got = decodeParams(encodeParams({ version: 0, params: new Float32Array(0), buffers: new Float32Array(0) }));
    expect(got.version).toBe(0);
    expect(got.params.length + got.buffers.length).toBe(0);
  });
});

describe('decode errors', () => {
  const bytes = encodeGradient(submission({ grads: floats(40, 1), stats: floats(3, 2) }));

  it('truncated: shorter than a header, and cut anywhere', () => {
    for (const cut of [0, 3, 11]) expectReason(() => decodeGradient(bytes.slice(0, cut)), 'truncated', /^gradient frame: /);
    // A cut frame no longer has its checksum at the end, so the check fails first...
    for (const cut of [12, 40, bytes.length - 1]) expectReason(() => decodeGradient(bytes.slice(0, cut)), 'checksum');
    // ...but a cut frame resealed with a valid checksum is reported as truncated.
    for (const cut of [12, 20, 40, 48, 100, bytes.length - 8]) {
      const body = bytes.slice(0, cut);
      const framed = reseal(Uint8Array.from([...body, 0, 0, 0, 0]));
      expectReason(() => decodeGradient(framed), 'truncated', /^gradient frame: .* needs \d+ bytes/);
    }
  });

  it('magic: another frame type, or garbage', () => {
    const params = encodeParams({ version: 1, params: floats(4), buffers: new Float32Array(0) });
    expectReason(() => decodeGradient(params), 'magic', /^gradient frame: bad magic "ETPV" \(expected 'ETGR'\)/);
    expectReason(() => decodeParams(bytes), 'magic', /^params frame: /);
    expectReason(() => decodeEval(bytes), 'magic', /^eval frame: /);
    expectReason(() => decodeGradient(new Uint8Array(64)), 'magic');
  });

  it('format: a different format version', () => {
    const other = bytes.slice();
    new DataView(other.buffer).setUint32(4, GRADIENT_FORMAT + 1, true);
    expectReason(() => decodeGradient(reseal(other)), 'format', /^gradient frame: unsupported format 3 \(this build reads 2\)/);
  });

  it('checksum: any single flipped bit after the header', () => {
    for (let bit = 64; bit < bytes.length * 8; bit++) {
      const bad = bytes.slice();
      bad[bit >> 3] ^= 1 << (bit & 7);
      const e = wireError(() => decodeGradient(bad));
      expect(e.reason, `bit ${bit}`).toBe('checksum');
    }
    const bad = bytes.slice();
    bad[30] ^= 0x10;
    expectReason(() => decodeGradient(bad), 'checksum', /^gradient frame: checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/);
  });

  it('length: extra bytes before the checksum', () => {
    for (const extra of [4, 8, 1000]) {
      const longer = new Uint8Array(bytes.length + extra);
      longer.set(bytes.subarray(0, bytes.length - 4));
      expectReason(() => decodeGradient(reseal(longer)), 'length', new RegExp(`^gradient frame: ${extra} unread bytes`));
    }
  });

  it('truncated, not RangeError/OOM, for absurd declared lengths', () => {
    // Declared lengths of u32 max for the lease id or grads, 2^30 floats for stats, with no data behind them.
    const absurd = (field: 'lease' | 'grads' | 'stats') => {
      const leaseId = submission().leaseId;
      const lengths = field === 'grads' ? [0xffffffff] : field === 'stats' ? [0, 0x40000000] : [];
      const w = new FrameWriter(GRADIENT_MAGIC, GRADIENT_FORMAT, (field === 'lease' ? 4 : stringBytes(leaseId)) + 4 * lengths.length + 16 + 8 + 4 + 4);
      if (field === 'lease') w.u32(0xffffffff);
      else w.string(leaseId);
      for (let i = 0; i < 4; i++) w.u32(1);
      w.f64(0.5);
      w.u32(0);
      w.u32(0); // no domain section
      for (const n of lengths) w.u32(n);
      return w.finish();
    };
    expectReason(() => decodeGradient(absurd('lease')), 'truncated', /string of 4294967295 bytes/);
    expectReason(() => decodeGradient(absurd('grads')), 'truncated', /4294967295 floats/);
    expectReason(() => decodeGradient(absurd('stats')), 'truncated', /1073741824 floats/);
  });
});
