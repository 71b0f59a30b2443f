import type { AdamConfig } from './config.js';

/** First moment m and second moment v. */
export const ADAM_SLOT_COUNT = 2;

/**
 * One PyTorch-style Adam/AdamW update in place. `completedSteps` is the number of
 * updates before this one (bias correction uses t = completedSteps + 1).
 *   adam:  g = grad + wd * p           adamw: p *= 1 - lr * wd
 *   (decay only where decayMask is unset or 1)
 *   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 */
export function adamStep(
  config: AdamConfig,
  slots: readonly Float32Array[],
  completedSteps: number,
  params: Float32Array,
  grads: Float32Array,
  lr: number,
  decayMask?: Uint8Array,
): void {
  const n = params.length;
  const m = slots[0];
  const v = slots[1];
  const { beta1, beta2, eps } = config;
  const t = completedSteps + 1;
  const stepSize = lr / (1 - Math.pow(beta1, t));
  const invSqrtBc2 = 1 / Math.sqrt(1 - Math.pow(beta2, t));
  const oneMinusB1 = 1 - beta1;
  const oneMinusB2 = 1 - beta2;
  const wd = config.weightDecay;
  const coupledWd = config.kind === 'adam' ? wd : 0;
  const decoupledKeep = config.kind === 'adamw' ? 1 - lr * wd : 1;
  const anyDecay = wd !== 0;

  for (let i = 0; i < n; i++) {
    let p = params[i];
    let g = grads[i];
    if (anyDecay && (decayMask === undefined || decayMask[i] !== 0)) {
      p *= decoupledKeep;
      g += coupledWd * p;
    }
    // Rounded like the stored float32 moments, so the update uses exactly what a restore would see.
    const mi = Math.fround(beta1 * m[i] + oneMinusB1 * g);
    const vi = Math.fround(beta2 * v[i] + oneMinusB2 * g * g);
    m[i] = mi;
    v[i] = vi;
    params[i] = p - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
  }
}
