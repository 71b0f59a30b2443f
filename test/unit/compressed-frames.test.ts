// Compressed gradient ('ETGQ') and parameter ('ETPQ') frames: they decode to what the codec's round
// trip gives, describe their own encoding, and a frame in another encoding than the reader expects,
// or a damaged one, is refused with a WireError naming why. fp32 keeps today's dense frames.
import { describe, expect, it } from 'vitest';
import { runRequestSchema } from '../../shared/protocol';
import { roundTrip, type ValueEncoding } from '../../shared/wire/codec';
import {
  checksum32, COMPRESSED_GRADIENT_MAGIC, COMPRESSED_PARAMS_MAGIC, decodeGradient, decodeParams, encodeCompressedGradient, encodeGradient, encodeGradientAs, encodeParams,
  magicOf, WireError, type GradientSubmission, type WireErrorReason,
} from '../../shared/wire';

function floats(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x / 0xffffffff - 0.5) * 2e-3;
  }
  return out;
}

const SEGMENTS = [300, 7, 200, 1];
const N = SEGMENTS.reduce((a, b) => a + b, 0);
const enc = (codec: ValueEncoding['codec'], segments: readonly number[] = SEGMENTS): ValueEncoding => ({ codec, segments });
const INT8 = enc({ codec: 'int8' });
const FP16 = enc({ codec: 'fp16' });
const TOPK = enc({ codec: 'topk', topK: 0.05 });
const FP32 = enc({ codec: 'fp32' });

const submission = (): GradientSubmission => ({
  leaseId: crypto.randomUUID(), version: 3, step: 3, shard: 1, count: 32, loss: 2.25, correct: 5, grads: floats(N, 7), stats: floats(6, 9),
});

function reseal(bytes: Uint8Array): Uint8Array {
  const end = bytes.byteLength - 4;
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(end, checksum32(bytes.subarray(0, end)), true);
  return bytes;
}

function expectReason(fn: () => unknown, reason: WireErrorReason, message?: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(WireError);
  expect((error as WireError).reason).toBe(reason);
  if (message) expect((error as WireError).message).toMatch(message);
}

/** Byte offset of the payload's length field in a gradient frame from `s` (header, lease id, scalars, no domain section, encoding). */
const payloadAt = (e: ValueEncoding) => 8 + 4 + 36 + 4 * 4 + 8 + 4 + 4 + 4 + 8 + 4 + 4 * e.segments.length;

describe('compressed gradient frames', () => {
  for (const e of [INT8, FP16, TOPK]) {
    it(`${e.codec.codec}: decode to the round trip of the values, with the encoding they were sent in`, () => {
      const s = submission();
      const bytes = encodeGradientAs(s, e);
      expect(magicOf(bytes)).toBe(COMPRESSED_GRADIENT_MAGIC);
      const got = decodeGradient(bytes, e);
      expect(Array.from(got.grads)).toEqual(Array.from(roundTrip(s.grads, e.codec, e.segments)));
      expect(Array.from(got.stats)).toEqual(Array.from(s.stats));
      expect({ ...got, grads: undefined, stats: undefined }).toEqual({ ...s, grads: undefined, stats: undefined, encoding: e });
      expect(bytes.byteLength).toBeLessThan(encodeGradient(s).byteLength);
    });
  }

  it('fp32 is the dense frame of before, byte for byte; it decodes with no encoding', () => {
    const s = submission();
    const bytes = encodeGradientAs(s, FP32);
    expect(Buffer.from(bytes).equals(Buffer.from(encodeGradient(s)))).toBe(true);
    expect(decodeGradient(bytes, FP32).encoding).toBeUndefined();
  });

  it('a frame in another codec, top-k fraction or segmentation than expected is refused before its payload is read', () => {
    const bytes = encodeGradientAs(submission(), INT8);
    expectReason(() => decodeGradient(bytes, FP16), 'codec', /^gradient frame: codec int8, and this run's is fp16$/);
    expectReason(() => decodeGradient(encodeGradientAs(submission(), TOPK), enc({ codec: 'topk', topK: 0.1 })), 'codec', /fraction 0.05.*fraction 0.1/);
    expectReason(() => decodeGradient(bytes, enc({ codec: 'int8' }, [300, 8, 199, 1])), 'segments', /segment 1 is 7 values, tensor 1 has 8/);
    expectReason(() => decodeGradient(bytes, enc({ codec: 'int8' }, [N])), 'segments', /4 segments, the run's model has 1 tensors/);
    // Dense and compressed frames are each refused where the other is expected.
    expectReason(() => decodeGradient(encodeGradient(submission()), INT8), 'codec', /a dense fp32 frame, and this run's frames are int8/);
    expectReason(() => decodeGradient(bytes, FP32), 'codec', /an? int8 frame, and this run's frames are dense fp32/);
  });

  it('a corrupt checksum is refused; so are a payload of the wrong length and a top-k index outside its tensor', () => {
    const bytes = encodeGradientAs(submission(), INT8);
    const flipped = bytes.slice();
    flipped[payloadAt(INT8) + 10] ^= 1;
    expectReason(() => decodeGradient(flipped, INT8), 'checksum');

    // A top-k frame whose first index points into the second tensor, resealed past the checksum.
    const topk = encodeGradientAs(submission(), TOPK).slice();
    new DataView(topk.buffer).setUint32(payloadAt(TOPK) + 4, 305, true);
    expectReason(() => decodeGradient(reseal(topk), TOPK), 'format', /top-k index 305 is outside its tensor's 0..299/);

    // A payload one block short of what its segments need (the frame sized for it, so it is well formed).
    const s = submission();
    const short = encodeCompressedGradient({ ...s, encoding: INT8, payload: new Uint8Array(16) });
    expectReason(() => decodeGradient(short, INT8), 'length', /int8 payload of 16 bytes/);
  });

  it('an unknown codec id is refused', () => {
    const bytes = encodeGradientAs(submission(), INT8).slice();
    new DataView(bytes.buffer).setUint32(payloadAt(INT8) - 4 * SEGMENTS.length - 4 - 8 - 4, 9, true);
    expectReason(() => decodeGradient(reseal(bytes)), 'codec', /unknown codec id 9/);
  });
});

describe('compressed parameter frames', () => {
  const p = { version: 4, params: floats(N, 3), buffers: floats(5, 4) };

  for (const e of [INT8, FP16]) {
    it(`${e.codec.codec}: parameters decode to their round trip, buffers exactly`, () => {
      const bytes = encodeParams(p, e);
      expect(magicOf(bytes)).toBe(COMPRESSED_PARAMS_MAGIC);
      const got = decodeParams(bytes, e);
      expect(got.version).toBe(4);
      expect(got.encoding).toEqual(e);
      expect(Array.from(got.params)).toEqual(Array.from(roundTrip(p.params, e.codec, e.segments)));
      expect(Array.from(got.buffers)).toEqual(Array.from(p.buffers));
    });
  }

  it('fp32 (or no encoding) is the dense frame of before; refusals as for gradients', () => {
    expect(Buffer.from(encodeParams(p, FP32)).equals(Buffer.from(encodeParams(p)))).toBe(true);
    const bytes = encodeParams(p, INT8);
    expectReason(() => decodeParams(bytes, FP16), 'codec');
    expectReason(() => decodeParams(bytes, enc({ codec: 'int8' }, [N])), 'segments');
    expectReason(() => decodeParams(encodeParams(p), INT8), 'codec');
    const flipped = bytes.slice();
    flipped[40] ^= 4;
    expectReason(() => decodeParams(flipped), 'checksum');
    expect(() => encodeParams(p, TOPK)).toThrow(/top-k is a gradient codec/);
  });
});

describe('run request: compression rules', () => {
  const issues = (cluster: object, optimizer?: object) => {
    const r = runRequestSchema.safeParse({ dataset: 'fixture', cluster, ...(optimizer ? { optimizer } : {}) });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('verification with error feedback is refused, naming both fields', () => {
    const [issue, ...rest] = issues({ verifyRate: 0.1, compression: { gradients: 'int8', errorFeedback: true } });
    expect(rest).toEqual([]);
    expect(issue).toMatch(/^cluster\.compression\.errorFeedback: .*verifyRate 0\.1.*errorFeedback/);
    expect(issues({ verifyRate: 0.1, compression: { gradients: 'int8' } })).toEqual([]);
    expect(issues({ compression: { gradients: 'int8', errorFeedback: true } })).toEqual([]);
  });

  it('momentum correction needs SGD without momentum, synchronous steps and no verification', () => {
    const dgc = { gradients: 'topk', momentumCorrection: 0.9 };
    expect(issues({ compression: dgc }, { kind: 'sgd', momentum: 0 })).toEqual([]);
    expect(issues({ compression: dgc })).toEqual([expect.stringMatching(/^cluster\.compression\.momentumCorrection: 0\.9 keeps the momentum on the workers.*it is adam/)]);
    expect(issues({ compression: dgc }, { kind: 'sgd', momentum: 0.9 })).toEqual([expect.stringMatching(/SGD with momentum 0 \(it is SGD with momentum 0\.9\)/)]);
    expect(issues({ compression: dgc, diloco: { innerSteps: 8 } }, { kind: 'sgd', momentum: 0 })).toEqual([expect.stringMatching(/DiLoCo/)]);
    expect(issues({ compression: dgc, verifyRate: 0.1 }, { kind: 'sgd', momentum: 0 })).toEqual([expect.stringMatching(/compression\.momentumCorrection: .*verifyRate/)]);
  });

  it('topK with a codec other than top-k is allowed (and ignored)', () => {
    expect(issues({ compression: { gradients: 'int8', topK: 0.1 } })).toEqual([]);
  });
});
