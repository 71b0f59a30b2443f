import type { ParamSpec } from '../../shared/models/params';

/** max |a − b| / max |b|: the relative error of a whole vector (where no tensor layout applies). */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

export interface TensorError {
  readonly tensor: string;
  readonly error: number;
}

/**
 * The worst tensor's (parameters, or batch-norm buffers) ‖a − b‖ / ‖b − start‖: the disagreement relative to how far training
 * moved that tensor from `start`, so that neither a large tensor (logit_scale = 10) nor a large
 * initial value can hide a wrong update. A tensor that training did not move must agree exactly.
 */
export function worstTensorError(a: Float32Array, b: Float32Array, start: Float32Array, params: readonly Pick<ParamSpec, 'name' | 'shape'>[]): TensorError {
  let worst: TensorError = { tensor: '', error: 0 };
  let offset = 0;
  for (const p of params) {
    const size = p.shape.reduce((n, d) => n * d, 1);
    let diff = 0;
    let moved = 0;
    for (let i = offset; i < offset + size; i++) {
      diff += (a[i] - b[i]) ** 2;
      moved += (b[i] - start[i]) ** 2;
    }
    const error = diff === 0 ? 0 : moved === 0 ? Infinity : Math.sqrt(diff / moved);
    if (error > worst.error || !worst.tensor) worst = { tensor: p.name, error };
    offset += size;
  }
  if (offset !== b.length) throw new RangeError(`the layout covers ${offset} values, the vectors have ${b.length}`);
  return worst;
}
