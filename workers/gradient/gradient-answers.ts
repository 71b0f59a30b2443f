// How a worker encodes its train answers: in its run's gradient encoding (cluster.compression), through
// the worker's error feedback when the run asks for it; a fp32 run sends the dense frame of before.
//
// The residual (what this worker's encodings have not yet delivered) lives in the isolate, per run and
// worker identity, so a supervised chain keeps it across invocations. It is never acknowledged: when the
// worker dies, or its isolate is evicted, it is lost: what the worker's encodings have not yet delivered
// (measured with the trainer's churn simulation, README "Communication": about 1 % of an answer's norm
// for int8, 5–7 answers' worth for top-k 1 %).
import type { RunSpec } from '../../shared/protocol';
import { ErrorFeedback } from '../../shared/training/error-feedback';
import { runEncodings, type RunEncodings } from '../../shared/training/run-encodings';
import { encodeCompressedGradient, encodeGradient, type GradientSubmission } from '../../shared/wire';

/** Residuals kept per isolate; the oldest goes first (a residual is 4 bytes per parameter). */
const MAX_RESIDUALS = 4;
const residuals = new Map<string, ErrorFeedback>();

function residualOf(runId: string, workerId: string, size: number, momentum: number): ErrorFeedback {
  const key = `${runId}/${workerId}`;
  let feedback = residuals.get(key);
  if (!feedback) {
    // A new run (or identity) replaces another run's residuals first: they cannot be used again.
    for (const k of residuals.keys()) if (!k.startsWith(`${runId}/`)) residuals.delete(k);
    while (residuals.size >= MAX_RESIDUALS) residuals.delete(residuals.keys().next().value!);
    feedback = new ErrorFeedback(size, momentum);
    residuals.set(key, feedback);
  }
  return feedback;
}

export class GradientAnswers {
  private constructor(
    private readonly encodings: RunEncodings,
    private readonly feedback: ErrorFeedback | undefined,
  ) {}

  /** The answers of `workerId` (asked for only when the run compresses gradients) to the run `spec`. */
  static async forRun(spec: RunSpec, workerId: () => Promise<string>): Promise<GradientAnswers> {
    const encodings = runEncodings(spec);
    if (encodings.gradients.codec.codec === 'fp32') return new GradientAnswers(encodings, undefined);
    return new GradientAnswers(encodings, residualOf(spec.runId, await workerId(), spec.paramCount, encodings.momentumCorrection));
  }

  /** The frame of one train answer. */
  frame(s: GradientSubmission): Uint8Array<ArrayBuffer> {
    if (!this.feedback) return encodeGradient(s);
    const encoding = this.encodings.gradients;
    // Without errorFeedback the residual is left at zero and each gradient is encoded alone.
    const { payload } = this.feedback.encode(s.grads, encoding.codec, encoding.segments, this.encodings.errorFeedback);
    return encodeCompressedGradient({ ...s, encoding, payload });
  }
}
