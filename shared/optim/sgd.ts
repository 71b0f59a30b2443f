import type { SgdConfig } from './config.js';

/** One momentum buffer, or none when momentum is 0 (plain SGD keeps no state). */
export function sgdSlotCount(config: SgdConfig): number {
  return config.momentum > 0 ? 1 : 0;
}

/**
 * One PyTorch-style SGD update in place (dampening 0):
 *   g = grad + wd * p            (only where decayMask is unset or 1)
 *   buf = momentum * buf + g     (buf starts at 0, so step 1 gives buf = g as in PyTorch)
 *   p -= lr * (nesterov ? g + momentum * buf : buf)
 */
export function sgdStep(
  config: SgdConfig,
  slots: readonly Float32Array[],
  params: Float32Array,
  grads: Float32Array,
  lr: number,
  decayMask?: Uint8Array,
): void {
  const n = params.length;
  const wd = config.weightDecay;
  const mu = config.momentum;
  const nesterov = config.nesterov;

  if (mu === 0) {
    for (let i = 0; i < n; i++) {
      const p = params[i];
      const g = wd !== 0 && (decayMask === undefined || decayMask[i] !== 0) ? grads[i] + wd * p : grads[i];
      params[i] = p - lr * g;
    }
    return;
  }

  const buf = slots[0];
  for (let i = 0; i < n; i++) {
    const p = params[i];
    const g = wd !== 0 && (decayMask === undefined || decayMask[i] !== 0) ? grads[i] + wd * p : grads[i];
    const b = Math.fround(mu * buf[i] + g);
    buf[i] = b;
    params[i] = p - lr * (nesterov ? g + mu * b : b);
  }
}
