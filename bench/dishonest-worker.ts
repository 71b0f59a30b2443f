// The dishonest workers of the integrity experiment: the real compute, with its answer replaced by a
// plausible wrong one that passes every frame check (finite, in range, of normal size).
import type { LeaseComputer } from '../workers/gradient/lease-computer';

export type Dishonesty = 'random-gradient' | 'fake-eval';

/** A standard normal deviate (Box–Muller) from a seeded uniform source. */
function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

/**
 * 'random-gradient': each train answer's gradient becomes a random direction with the honest
 * gradient's norm (about the run's median norm, so the norm guard cannot tell); loss, accuracy and
 * statistics stay honest. 'fake-eval': each evaluation answer claims every image right at a tiny loss.
 */
export function dishonest(inner: LeaseComputer, how: Dishonesty, seed = 7): LeaseComputer {
  let state = seed >>> 0;
  const next = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return {
    prepare: (spec, captions) => inner.prepare(spec, captions),
    async train(lease, params, buffers, data) {
      const r = await inner.train(lease, params, buffers, data);
      if (how !== 'random-gradient') return r;
      let norm = 0;
      for (const g of r.grads) norm += g * g;
      const grads = new Float32Array(r.grads.length);
      let n = 0;
      for (let i = 0; i < grads.length; i++) n += (grads[i] = gaussian(next)) ** 2;
      const scale = Math.sqrt(norm / n);
      for (let i = 0; i < grads.length; i++) grads[i] *= scale;
      return { ...r, grads };
    },
    async evaluate(lease, params, buffers, data) {
      const r = await inner.evaluate(lease, params, buffers, data);
      return how === 'fake-eval' ? { ...r, correct: r.count, lossSum: 0.01 * r.count } : r;
    },
  };
}
