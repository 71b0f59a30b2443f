// Caption knowledge inputs of the heads: caption vectors as the graphs take them, and the seeded
// placeholder vectors (distinct per class, so the text side is learnable, but carrying no language
// knowledge) that stand in when a run names no caption set.
import type { TensorSpec } from '../models/compile';
import { mulberry32 } from '../data/shuffle';
import { numel } from '../onnx/graph';
import type { Feed } from '../onnx/session';
import type { CaptionEncoder } from '../text/encoder';

/** Seeded stand-in caption embeddings: [classes, perClass, dim], unit-norm rows. */
export function placeholderCaptions(classes: number, perClass: number, dim: number, seed = 1234): Float32Array {
  const rng = mulberry32(seed);
  const out = new Float32Array(classes * perClass * dim);
  for (let row = 0; row < classes * perClass; row++) {
    const v = out.subarray(row * dim, (row + 1) * dim);
    let norm = 0;
    for (let i = 0; i < dim; i++) {
      v[i] = Math.sqrt(-2 * Math.log(Math.max(rng(), 1e-12))) * Math.cos(2 * Math.PI * rng());
      norm += v[i] * v[i];
    }
    for (let i = 0; i < dim; i++) v[i] /= Math.sqrt(norm);
  }
  return out;
}

/**
 * The caption feed a head needs for one batch. `class_text` takes each class's first caption,
 * `class_texts` all K (both the same every step); the per-image `caption` of the concat head is the
 * caption of the image's own class — which names the label, as the seed's fusion does.
 */
export function captionFeed(spec: TensorSpec, captions: Float32Array, perClass: number, labels: BigInt64Array): Feed {
  const dim = spec.shape[spec.shape.length - 1];
  const data = new Float32Array(numel(spec.shape));
  const copy = (cls: number, k: number, row: number) =>
    data.set(captions.subarray((cls * perClass + k) * dim, (cls * perClass + k + 1) * dim), row * dim);
  if (spec.name === 'caption') labels.forEach((label, i) => copy(Number(label), 0, i));
  else {
    const [classes, k] = spec.name === 'class_texts' ? spec.shape : [spec.shape[0], 1];
    for (let c = 0; c < classes; c++) for (let j = 0; j < k; j++) copy(c, j, c * k + j);
  }
  return { data, dims: spec.shape };
}

export const PLACEHOLDER_ENCODER_ID = 'placeholder:mulberry32-1234';

/**
 * The placeholder vectors as a caption set, so they are stored in KV and read from there like any
 * other: one text naming each (class, caption) slot, and an "encoder" that returns the seeded vectors.
 */
export function placeholderCaptionSet(classes: number, perClass: number, dim: number): { texts: string[][]; encoder: CaptionEncoder } {
  const texts = Array.from({ length: classes }, (_, c) => Array.from({ length: perClass }, (_, k) => `placeholder caption ${k} of class ${c}`));
  const encoder: CaptionEncoder = {
    id: PLACEHOLDER_ENCODER_ID,
    dim,
    encode: async (t) => {
      if (t.length !== classes * perClass) throw new Error(`placeholder captions: ${t.length} texts for ${classes} × ${perClass} slots`);
      return placeholderCaptions(classes, perClass, dim);
    },
  };
  return { texts, encoder };
}
