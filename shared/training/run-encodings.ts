// The encodings a cluster run's frames travel in (cluster.compression over the model's tensors): the
// coordinator checks answers and encodes versions with them, workers encode answers with them. Read
// from the run spec (its paramSegments), so a browser page's loop need not build the model's layout.
import type { ValueEncoding } from '../wire/codec';
import { communicationOf, gradientCodec, paramsCodec } from './communication';

export interface RunEncodings {
  /** Of the gradient frames workers send (fp32: the dense 'ETGR' frame). */
  readonly gradients: ValueEncoding;
  /** Of the parameter versions workers fetch (fp32: the dense 'ETPV' frame). */
  readonly params: ValueEncoding;
  readonly errorFeedback: boolean;
  /** DGC momentum correction's factor (0: off). */
  readonly momentumCorrection: number;
}

/** What of a run spec (shared/protocol.ts RunSpec, a layer above) the encodings read. */
export interface EncodedRun {
  readonly runId: string;
  readonly paramCount: number;
  readonly paramSegments?: readonly number[];
  readonly config: { readonly cluster: Parameters<typeof communicationOf>[0] };
}

const cache = new WeakMap<EncodedRun, RunEncodings>();

/** A run's encodings (computed once per spec object: a run's spec never changes). */
export function runEncodings(spec: EncodedRun): RunEncodings {
  let e = cache.get(spec);
  if (!e) {
    const { compression } = communicationOf(spec.config.cluster);
    const compressed = compression.gradients !== 'fp32' || compression.params !== 'fp32';
    if (compressed && !spec.paramSegments) throw new Error(`run ${spec.runId} compresses its frames, and its spec names no parameter segments`);
    const segments = spec.paramSegments ?? [spec.paramCount];
    e = { gradients: { codec: gradientCodec(compression), segments }, params: { codec: paramsCodec(compression), segments }, errorFeedback: compression.errorFeedback, momentumCorrection: compression.momentumCorrection };
    cache.set(spec, e);
  }
  return e;
}
