/**
 * Turns CIFAR-10 records into the training graph's `image` [B,3,32,32] float32 and `label` [B] int64
 * inputs: per-channel normalisation, optionally with pad-and-crop and horizontal-flip augmentation.
 */
import { IMAGE_BYTES, IMAGE_SIZE, type CifarSplit } from './cifar.js';

export interface Normalization {
  /** Per-channel (R, G, B) mean and standard deviation of pixel/255. */
  mean: [number, number, number];
  std: [number, number, number];
}

/** What the seed does: maps [0, 1] to [-1, 1]. */
export const SEED_NORMALIZATION: Normalization = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

/** Statistics measured on the train split of the project's CIFAR-10 copy. */
export const CIFAR10_NORMALIZATION: Normalization = {
  mean: [0.4913, 0.4821, 0.4465],
  std: [0.2452, 0.2428, 0.2606],
};

export interface Augmentation {
  /**
   * The uniform [0, 1) source of the image at batch position b. Per image it draws, in order: the vertical
   * and horizontal shifts (when padCrop > 0), then the flip (when flip is set).
   */
  rng: (b: number) => () => number;
  /** Maximum shift of the random crop in pixels (4 for the usual pad-4 crop); 0 disables cropping. */
  padCrop: number;
  flip: boolean;
}

const PLANE = IMAGE_SIZE * IMAGE_SIZE;

/**
 * Writes images `indices` of `split` into `out` (indices.length × 3 × 32 × 32, normalised) and their labels
 * into `labelsOut`.
 *
 * Augmentation is a random crop of the image zero-padded by `padCrop` pixels, i.e. a shift by
 * dy, dx ∈ [−padCrop, padCrop]: out[y][x] = in[y + dy][x + dx], then an optional mirror
 * out[y][x] ← out[y][31 − x].
 * The padding is applied after normalisation, so padded pixels are 0 — the value of a pixel at the mean —
 * rather than black, which would be a strong negative input.
 */
export function fillBatch(
  split: CifarSplit,
  indices: ArrayLike<number>,
  out: Float32Array,
  labelsOut: BigInt64Array,
  norm: Normalization,
  augment?: Augmentation,
): void {
  const batch = indices.length;
  if (out.length !== batch * IMAGE_BYTES) {
    throw new Error(`fillBatch: out has ${out.length} floats, expected ${batch} × ${IMAGE_BYTES}`);
  }
  if (labelsOut.length !== batch) {
    throw new Error(`fillBatch: labelsOut has ${labelsOut.length} entries, expected ${batch}`);
  }
  const pad = augment?.padCrop ?? 0;
  if (!Number.isInteger(pad) || pad < 0 || pad >= IMAGE_SIZE) {
    throw new Error(`fillBatch: padCrop must be an integer in 0..${IMAGE_SIZE - 1}, got ${pad}`);
  }
  const lut = normalizationTable(norm);
  const { images, labels } = split;

  for (let b = 0; b < batch; b++) {
    const index = indices[b];
    if (!Number.isInteger(index) || index < 0 || index >= split.count) {
      throw new Error(`fillBatch: index ${index} at batch position ${b} is outside 0..${split.count - 1}`);
    }
    labelsOut[b] = BigInt(labels[index]);
    let dy = 0;
    let dx = 0;
    let flip = false;
    if (augment) {
      const rng = augment.rng(b);
      if (pad > 0) {
        dy = Math.floor(rng() * (2 * pad + 1)) - pad;
        dx = Math.floor(rng() * (2 * pad + 1)) - pad;
      }
      flip = augment.flip && rng() < 0.5;
    }
    // Output columns [x0, x1) read source columns x + dx inside the image; the rest are padding.
    const x0 = Math.max(0, -dx);
    const x1 = Math.min(IMAGE_SIZE, IMAGE_SIZE - dx);
    for (let c = 0; c < 3; c++) {
      const table = c * 256;
      const srcPlane = index * IMAGE_BYTES + c * PLANE;
      const dstPlane = (b * 3 + c) * PLANE;
      for (let y = 0; y < IMAGE_SIZE; y++) {
        const dst = dstPlane + y * IMAGE_SIZE;
        const sy = y + dy;
        if (sy < 0 || sy >= IMAGE_SIZE) {
          out.fill(0, dst, dst + IMAGE_SIZE);
          continue;
        }
        const src = srcPlane + sy * IMAGE_SIZE + dx;
        if (flip) {
          // Mirrored: output column 31 − x holds what column x would hold unflipped.
          const last = dst + IMAGE_SIZE - 1;
          for (let x = 0; x < x0; x++) out[last - x] = 0;
          for (let x = x0; x < x1; x++) out[last - x] = lut[table + images[src + x]];
          for (let x = x1; x < IMAGE_SIZE; x++) out[last - x] = 0;
        } else {
          for (let x = 0; x < x0; x++) out[dst + x] = 0;
          for (let x = x0; x < x1; x++) out[dst + x] = lut[table + images[src + x]];
          for (let x = x1; x < IMAGE_SIZE; x++) out[dst + x] = 0;
        }
      }
    }
  }
}

/** 3 × 256 table: normalised value of each byte value per channel (the inference model bakes it in too). */
export function normalizationTable(norm: Normalization): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    if (!(norm.std[c] > 0)) throw new Error(`fillBatch: std[${c}] must be positive, got ${norm.std[c]}`);
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - norm.mean[c]) / norm.std[c];
  }
  return lut;
}
