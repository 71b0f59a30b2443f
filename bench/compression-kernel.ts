// The timed part of `bench compression`, runtime-neutral: Node runs it in-process, workerd runs it
// inside an isolate (bench/compression-worker.ts). The codecs are plain TypeScript on typed arrays
// (no WASM), so both runtimes time the same JavaScript on V8.
import { mulberry32 } from '../shared/data/shuffle';
import { median } from '../shared/stats';
import { ErrorFeedback } from '../shared/training/error-feedback';
import { decodeValues, encodeValues, payloadBytes, type CodecSpec } from '../shared/wire/codec';

export interface CompressionCase {
  readonly label: string;
  readonly spec: CodecSpec;
  /** Time ErrorFeedback.encode (residual add + encode + decode of its own payload) as the encode. */
  readonly errorFeedback: boolean;
}

export const COMPRESSION_CASES: readonly CompressionCase[] = [
  { label: 'fp32 (reference)', spec: { codec: 'fp32' }, errorFeedback: false },
  { label: 'fp16', spec: { codec: 'fp16' }, errorFeedback: false },
  { label: 'int8', spec: { codec: 'int8' }, errorFeedback: false },
  { label: 'topk 1%', spec: { codec: 'topk', topK: 0.01 }, errorFeedback: false },
  { label: 'int8 + error feedback', spec: { codec: 'int8' }, errorFeedback: true },
  { label: 'topk 1% + error feedback', spec: { codec: 'topk', topK: 0.01 }, errorFeedback: true },
];

export interface TimingRequest {
  readonly segments: readonly number[];
  /** Timed repetitions per operation (the median is reported). */
  readonly repetitions: number;
  /** Each repetition loops the operation for at least this long (workerd's clock steps by 1 ms). */
  readonly windowMs: number;
}

export interface CaseTiming {
  readonly label: string;
  readonly payloadBytes: number;
  /** Median ms per call; decode is absent for error feedback (its encode decodes). */
  readonly encodeMs: number;
  readonly decodeMs?: number;
}

/** A gradient-like vector: per tensor its own scale, values uniform in ±scale (seeded). */
export function gradientLike(segments: readonly number[], seed = 1): Float32Array {
  const rng = mulberry32(seed);
  const x = new Float32Array(segments.reduce((a, b) => a + b, 0));
  let start = 0;
  for (const size of segments) {
    const scale = 10 ** (rng() * 3 - 4);
    for (let i = start; i < start + size; i++) x[i] = (rng() * 2 - 1) * scale;
    start += size;
  }
  return x;
}

/** Calls `op` for at least `ms`; returns ms per call. */
function loop(op: () => void, ms: number): number {
  let calls = 0;
  let elapsed = 0;
  const t0 = performance.now();
  do {
    op();
    calls++;
    elapsed = performance.now() - t0;
  } while (elapsed < ms);
  return elapsed / calls;
}

/**
 * Median ms per call of `op` once optimised: a warm-up of WARMUP_WINDOWS windows (Node 20's V8 takes
 * a few hundred ms of calls to tier a loop over 658k values up; 100 ms left it 7× slower), then
 * `repetitions` windows of at least `windowMs`.
 */
function timeOp(op: () => void, r: TimingRequest): number {
  loop(op, WARMUP_WINDOWS * r.windowMs);
  return median(Array.from({ length: r.repetitions }, () => loop(op, r.windowMs)));
}

const WARMUP_WINDOWS = 8;

export function timeCompression(r: TimingRequest): CaseTiming[] {
  const x = gradientLike(r.segments);
  const n = x.length;
  return COMPRESSION_CASES.map((c) => {
    const bytes = payloadBytes(c.spec, r.segments);
    if (c.errorFeedback) {
      const ef = new ErrorFeedback(n);
      return { label: c.label, payloadBytes: bytes, encodeMs: timeOp(() => ef.encode(x, c.spec, r.segments), r) };
    }
    const payload = encodeValues(x, c.spec, r.segments);
    return {
      label: c.label,
      payloadBytes: bytes,
      encodeMs: timeOp(() => encodeValues(x, c.spec, r.segments), r),
      decodeMs: timeOp(() => decodeValues(payload, n, c.spec, r.segments), r),
    };
  });
}
