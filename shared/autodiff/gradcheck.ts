// Gradient check: ORT-computed gradients of built graphs against central finite differences.
//
// Scheme: for each checked tensor x with analytic gradient g, two unit directions d — g/|g| and a
// random ±1 vector scaled to unit length. The directional derivative g·d is compared with
// (f(x+εd) − f(x−εd)) / 2ε for ε in EPSILONS, keeping the ε with the smallest error (float32
// rounding favours large ε, curvature small ε). The error is |FD − g·d| / |g|: relative to the
// gradient's norm, so it is scale-free and a tensor whose gradient is right only in sign fails.
//
// Directions average over every element, so an error in one element hides in them. Single
// coordinates are checked too: every element of a small tensor, else the largest two and a seeded
// random sample; there the error is |FD − g_j| / (|g_j| + rms(g)), relative to the element with the
// tensor's typical magnitude as a floor. That needs a loss summed in float64 (the rule cases): a whole
// training graph's float32 loss carries ~1e-7 relative rounding, which over any ε is as large as a
// single parameter's derivative, so presets are checked along directions only (`coordinates: false`).
import type { Feed, FeedData } from '../onnx/session';
import { mulberry32 } from '../data/shuffle';

export const EPSILONS = [3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3] as const;

/** Runs the function under test: loss in float64 for the given feeds. */
export type LossFn = (feeds: Readonly<Record<string, Feed>>) => Promise<number>;

export interface TensorCheck {
  readonly name: string;
  /** Worst error over the directions and the coordinates. */
  readonly error: number;
  readonly directionError: number;
  readonly coordinateError: number;
  readonly gradNorm: number;
}

/** Tensors up to this many elements have every coordinate checked. */
export const ALL_COORDINATES_UP_TO = 64;
/** Larger tensors: the largest |g| coordinates and this many random ones. */
const LARGEST_COORDINATES = 2;
const RANDOM_COORDINATES = 4;
const COORDINATE_EPSILONS = [1e-1, 3e-2, 1e-2, 3e-3] as const;

function coordinatesToCheck(grad: Float32Array, rng: () => number): number[] {
  if (grad.length <= ALL_COORDINATES_UP_TO) return Array.from(grad.keys());
  const picked = new Set(
    Array.from(grad.keys())
      .sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a]))
      .slice(0, LARGEST_COORDINATES),
  );
  while (picked.size < LARGEST_COORDINATES + RANDOM_COORDINATES) picked.add(Math.floor(rng() * grad.length));
  return [...picked];
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
  coordinates = true,
): Promise<TensorCheck> {
  const x = feeds[name].data as Float32Array;
  const gradNorm = norm(grad);
  if (gradNorm === 0 || !Number.isFinite(gradNorm)) {
    const error = Number.isFinite(gradNorm) ? 0 : Infinity;
    return { name, error, directionError: error, coordinateError: error, gradNorm };
  }
  const rng = mulberry32(seed);
  const fdAlong = async (d: Float32Array, epsilons: readonly number[], analytic: number, denominator: number): Promise<number> => {
    let best = Infinity;
    for (const eps of epsilons) {
      const shifted = (sign: number) => ({ ...feeds, [name]: { data: x.map((v, i) => v + sign * eps * d[i]), dims: feeds[name].dims } });
      const fd = ((await loss(shifted(1))) - (await loss(shifted(-1)))) / (2 * eps);
      best = Math.min(best, Math.abs(fd - analytic) / denominator);
    }
    return best;
  };
  const random = Float32Array.from(x, () => (rng() < 0.5 ? -1 : 1) / Math.sqrt(x.length));
  const along = Float32Array.from(grad, (v) => v / gradNorm);
  let directionError = 0;
  for (const d of [along, random]) directionError = Math.max(directionError, await fdAlong(d, EPSILONS, dot(grad, d) / scale, gradNorm / Math.abs(scale)));
  const rms = gradNorm / Math.abs(scale) / Math.sqrt(grad.length);
  let coordinateError = 0;
  for (const j of coordinates ? coordinatesToCheck(grad, rng) : []) {
    const unit = new Float32Array(x.length);
    unit[j] = 1;
    const analytic = grad[j] / scale;
    coordinateError = Math.max(coordinateError, await fdAlong(unit, COORDINATE_EPSILONS, analytic, Math.abs(analytic) + rms));
  }
  return { name, error: Math.max(directionError, coordinateError), directionError, coordinateError, gradNorm };
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
