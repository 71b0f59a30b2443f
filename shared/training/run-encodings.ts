// The encodings a cluster run's frames travel in (cluster.compression over the model's tensors): the
// coordinator checks answers and encodes versions with them, workers encode answers with them.
import { trainingLayout } from '../models/compile';
import { flatLayout } from '../models/params';
import type { ModelConfig } from '../models/presets';
import type { ValueEncoding } from '../wire/codec';
import { communicationOf, gradientCodec, paramsCodec } from './communication';

/** The tensor sizes of a model's parameters in flat order: the segments its codecs work within. */
export const paramSegments = (model: ModelConfig): number[] => flatLayout(trainingLayout(model).params).slices.map((s) => s.size);

export interface RunEncodings {
  /** Of the gradient frames workers send (fp32: the dense 'ETGR' frame). */
  readonly gradients: ValueEncoding;
  /** Of the parameter versions workers fetch (fp32: the dense 'ETPV' frame). */
  readonly params: ValueEncoding;
  readonly errorFeedback: boolean;
}

const cache = new WeakMap<object, RunEncodings>();

/** A run config's encodings (computed once per config object: a run's config never changes). */
export function runEncodings(config: { readonly train: { readonly model: ModelConfig }; readonly cluster: Parameters<typeof communicationOf>[0] }): RunEncodings {
  let e = cache.get(config);
  if (!e) {
    const { compression } = communicationOf(config.cluster);
    const segments = paramSegments(config.train.model);
    e = { gradients: { codec: gradientCodec(compression), segments }, params: { codec: paramsCodec(compression), segments }, errorFeedback: compression.errorFeedback };
    cache.set(config, e);
  }
  return e;
}
