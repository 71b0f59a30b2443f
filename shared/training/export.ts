// The inference model of trained weights: what `edgetrain train` writes and GET /v1/runs/:id/model.onnx serves.
import { buildEvalGraph, buildInferenceModel } from '../models/compile';
import { TEXT_DIM } from '../models/heads';
import { normalizationTable } from '../data/normalize';
import type { Domain } from '../models/layers';
import type { ModelConfig } from '../models/presets';
import { captionFeed, placeholderCaptions } from './caption-feed';
import type { NormalizationName } from './config';
import { NORMALIZATION } from './feeder';

/**
 * The model takes raw `pixels` (0–255) and normalises them as the run did. `captions` [classes,
 * captionsPerClass, 768]: what the run trained with (placeholders without). `domain` 'target': a DANN
 * run's model with the target domain's batch-norm statistics, for images of that domain.
 */
export function inferenceModelBytes(
  model: ModelConfig,
  normalization: NormalizationName,
  params: Float32Array,
  buffers: Float32Array,
  captions = placeholderCaptions(model.classes, model.captionsPerClass, TEXT_DIM),
  domain: Domain = 'source',
): Uint8Array {
  const text = new Map<string, Float32Array>();
  for (const spec of buildEvalGraph(model, 1).dataInputs) {
    if (spec.name === 'class_text' || spec.name === 'class_texts') {
      text.set(spec.name, captionFeed(spec, captions, model.captionsPerClass, new BigInt64Array(0)).data as Float32Array);
    }
  }
  return buildInferenceModel(model, { params, buffers, text, pixels: normalizationTable(NORMALIZATION[normalization]), domain });
}
