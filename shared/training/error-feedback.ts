// Error feedback (Seide et al. 2014; Karimireddy et al. 2019): a worker adds what its previous
// encodings lost to the next vector it sends, so over time every gradient value reaches the coordinator:
// the sum of what was sent plus the residual equals the sum of the true gradients.
import { decodeValues, encodeValues, type CodecSpec } from '../wire/codec';

export class ErrorFeedback {
  readonly residual: Float32Array;

  constructor(size: number) {
    this.residual = new Float32Array(size);
  }

  /**
   * Encodes `values` + residual (`feedback` false: `values` alone); the residual becomes what that
   * encoding lost. Returns the payload and the dense vector the receiver decodes from it.
   */
  encode(values: Float32Array, spec: CodecSpec, segments: readonly number[], feedback = true): { payload: Uint8Array<ArrayBuffer>; sent: Float32Array } {
    if (values.length !== this.residual.length) throw new RangeError(`error feedback: ${values.length} values, the residual has ${this.residual.length}`);
    const corrected = new Float32Array(values.length);
    if (feedback) for (let i = 0; i < values.length; i++) corrected[i] = values[i] + this.residual[i];
    else corrected.set(values);
    const payload = encodeValues(corrected, spec, segments);
    const sent = decodeValues(payload, values.length, spec, segments);
    if (feedback) for (let i = 0; i < values.length; i++) this.residual[i] = corrected[i] - sent[i];
    return { payload, sent };
  }
}
