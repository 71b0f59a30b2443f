// Error feedback (Seide et al. 2014; Karimireddy et al. 2019): a worker adds what its previous
// encodings lost to the next vector it sends, so over time every gradient value reaches the coordinator:
// the sum of what was sent plus the residual equals the sum of the true gradients.
//
// With momentum correction (Deep Gradient Compression, Lin et al. 2018) the worker keeps the momentum
// instead of the coordinator: u ← m·u + g, residual ← residual + u, and where an entry is sent both
// its residual and its momentum restart from zero (momentum factor masking). The coordinator then
// applies plain SGD to the mean of what was sent.
import { decodeValues, encodeValues, type CodecSpec } from '../wire/codec';

export class ErrorFeedback {
  readonly residual: Float32Array;
  /** Momentum correction's velocity (empty without it). */
  private readonly velocity: Float32Array;

  /** `momentum` > 0: DGC momentum correction with this factor. */
  constructor(
    size: number,
    private readonly momentum = 0,
  ) {
    this.residual = new Float32Array(size);
    this.velocity = new Float32Array(momentum > 0 ? size : 0);
  }

  /**
   * Encodes `values` + residual (`feedback` false: `values` alone); the residual becomes what that
   * encoding lost. Returns the payload and the dense vector the receiver decodes from it.
   */
  encode(values: Float32Array, spec: CodecSpec, segments: readonly number[], feedback = true): { payload: Uint8Array<ArrayBuffer>; sent: Float32Array } {
    if (values.length !== this.residual.length) throw new RangeError(`error feedback: ${values.length} values, the residual has ${this.residual.length}`);
    const corrected = new Float32Array(values.length);
    const u = this.velocity;
    if (u.length) for (let i = 0; i < values.length; i++) corrected[i] = this.residual[i] + (u[i] = this.momentum * u[i] + values[i]);
    else if (feedback) for (let i = 0; i < values.length; i++) corrected[i] = values[i] + this.residual[i];
    else corrected.set(values);
    const payload = encodeValues(corrected, spec, segments);
    const sent = decodeValues(payload, values.length, spec, segments);
    if (u.length) {
      for (let i = 0; i < values.length; i++) {
        if (sent[i] !== 0) u[i] = 0;
        this.residual[i] = corrected[i] - sent[i];
      }
    } else if (feedback) for (let i = 0; i < values.length; i++) this.residual[i] = corrected[i] - sent[i];
    return { payload, sent };
  }
}
