// Gradient check: ORT-computed gradients of built graphs against central finite differences.
//
// Scheme: for each checked tensor x with analytic gradient g, two unit directions d — g/|g| and a
// random ±1 vector scaled to unit length. The directional derivative g·d is compared with
// (f(x+εd) − f(x−εd)) / 2ε for ε in EPSILONS, keeping the ε with the smallest error (float32
// rounding favours large ε, curvature small ε). The error is |FD − g·d| / |g|: relative to the
// gradient's norm, so it is scale-free and a tensor whose gradient is right only in sign fails.
import type { Feed, FeedData } from '../onnx/session';
import { mulberry32 } from '../data/shuffle';

export const EPSILONS = [3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3] as const;

/** Runs the function under test: loss in float64 for the given feeds. */
export type LossFn = (feeds: Readonly<Record<string, Feed>>) => Promise<number>;

export interface TensorCheck {
  readonly name: string;
  /** Worst error over the directions. */
  readonly error: number;
  readonly gradNorm: number;
}

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Checks one input's gradient. `scale` is what the analytic gradient should be relative to the true
 * derivative (1, or −λ for gradient reversal).
 */
export async function checkTensor(
  loss: LossFn,
  feeds: Readonly<Record<string, Feed>>,
  name: string,
  grad: Float32Array,
  seed: number,
  scale = 1,
): Promise<TensorCheck> {
  const x = feeds[name].data as Float32Array;
  const gradNorm = norm(grad);
  if (gradNorm === 0 || !Number.isFinite(gradNorm)) return { name, error: Number.isFinite(gradNorm) ? 0 : Infinity, gradNorm };
  const rng = mulberry32(seed);
  const random = Float32Array.from(x, () => (rng() < 0.5 ? -1 : 1) / Math.sqrt(x.length));
  const along = Float32Array.from(grad, (v) => v / gradNorm);
  let worst = 0;
  for (const d of [along, random]) {
    const analytic = dot(grad, d) / scale;
    let best = Infinity;
    for (const eps of EPSILONS) {
      const shifted = (sign: number) => ({ ...feeds, [name]: { data: x.map((v, i) => v + sign * eps * d[i]), dims: feeds[name].dims } });
      const fd = ((await loss(shifted(1))) - (await loss(shifted(-1)))) / (2 * eps);
      best = Math.min(best, Math.abs(fd - analytic) / (gradNorm / Math.abs(scale)));
    }
    worst = Math.max(worst, best);
  }
  return { name, error: worst, gradNorm };
}

export type Sampler = 'normal' | 'positive' | 'awayFromZero' | { labels: number } | { constant: number };

/** Seeded input data: `awayFromZero` keeps ReLU/MaxPool kinks out of the ε neighbourhood. */
export function sample(kind: Sampler, count: number, rng: () => number): FeedData {
  if (typeof kind === 'object' && 'labels' in kind) return BigInt64Array.from({ length: count }, () => BigInt(Math.floor(rng() * kind.labels)));
  if (typeof kind === 'object') return new Float32Array(count).fill(kind.constant);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(rng(), 1e-12))) * Math.cos(2 * Math.PI * rng());
  return Float32Array.from({ length: count }, () => {
    if (kind === 'positive') return 0.5 + rng() * 1.5;
    if (kind === 'awayFromZero') return (rng() < 0.5 ? -1 : 1) * (0.2 + rng());
    return normal();
  });
}
