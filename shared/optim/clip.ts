/** Global L2 norm, accumulated in float64 so millions of float32 squares cannot overflow. */
export function gradNorm(grads: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < grads.length; i++) {
    const g = grads[i];
    sum += g * g;
  }
  return Math.sqrt(sum);
}

/**
 * Scales `grads` in place so their L2 norm is at most `maxNorm` (PyTorch clip_grad_norm_:
 * factor maxNorm / (norm + 1e-6), never above 1). Returns the norm before clipping.
 * A non-finite norm leaves `grads` untouched: the caller should check it and skip the step.
 */
export function clipGradNorm(grads: Float32Array, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new RangeError(`maxNorm: ${maxNorm} is not a finite number > 0`);
  }
  const norm = gradNorm(grads);
  if (!Number.isFinite(norm)) return norm;
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1) {
    for (let i = 0; i < grads.length; i++) grads[i] *= scale;
  }
  return norm;
}
