/**
 * Shifted target domains made from CIFAR-10: common corruptions at 5 graded severities, with parameters
 * taken from CIFAR-10-C (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
 * Corruptions and Perturbations", ICLR 2019; its make_cifar_c.py), adapted to 32×32 and to a pure,
 * deterministic implementation: no Node APIs, so it runs in Workers too.
 *
 * Image i of a split draws its randomness from its own generator, seeded from (seed, split, i): a subset
 * is corrupted exactly as it is within the whole split, in any order.
 */
import { IMAGE_BYTES, IMAGE_SIZE, type Cifar10, type CifarSplit } from './cifar';
import { fmix32, mulberry32 } from './shuffle';

export const CORRUPTION_FAMILIES = ['gaussian_noise', 'shot_noise', 'gaussian_blur', 'contrast', 'fog', 'jpeg', 'pixelate', 'color_shift'] as const;
export type CorruptionFamily = (typeof CORRUPTION_FAMILIES)[number];

export type CorruptionCategory = 'noise' | 'blur' | 'contrast' | 'weather' | 'digital' | 'color';

export const CORRUPTION_CATEGORY: Readonly<Record<CorruptionFamily, CorruptionCategory>> = Object.freeze({
  gaussian_noise: 'noise',
  shot_noise: 'noise',
  gaussian_blur: 'blur',
  contrast: 'contrast',
  fog: 'weather',
  jpeg: 'digital',
  pixelate: 'digital',
  color_shift: 'color',
});

export const SEVERITIES = [1, 2, 3, 4, 5] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface DomainShift {
  readonly family: CorruptionFamily;
  readonly severity: Severity;
}

export type SplitName = 'train' | 'test';

/** Per family, severity 1 … 5; image units are [0, 1] unless said otherwise. */
export const SEVERITY_PARAMETERS = {
  /** σ of the additive noise. */
  gaussian_noise: [0.04, 0.06, 0.08, 0.09, 0.1],
  /** Photons at full scale: pixel x becomes Poisson(x·c)/c. */
  shot_noise: [500, 250, 100, 75, 50],
  /** σ of the Gaussian kernel in pixels. */
  gaussian_blur: [0.4, 0.6, 0.7, 0.8, 1],
  /** Factor c of (x − mean)·c + mean. */
  contrast: [0.75, 0.5, 0.4, 0.3, 0.15],
  /** [fog strength, roughness decay of the plasma fractal]. */
  fog: [[0.2, 3], [0.5, 3], [0.75, 2.5], [1, 2], [1.5, 1.75]],
  /** JPEG quality (IJG scale). */
  jpeg: [80, 65, 58, 50, 40],
  /** Downsampled side as a fraction of 32. */
  pixelate: [0.95, 0.9, 0.85, 0.75, 0.65],
  /** [hue rotation in degrees, warm cast: red gain 1 + k, blue gain 1 − k]. Not in CIFAR-10-C. */
  color_shift: [[10, 0.02], [20, 0.04], [30, 0.06], [45, 0.08], [60, 0.1]],
} as const satisfies Record<CorruptionFamily, readonly unknown[]>;

const VALID = `families: ${CORRUPTION_FAMILIES.join(', ')}; severities: ${SEVERITIES.join(', ')}`;

/** `"fog:3"` → { family: 'fog', severity: 3 }. */
export function parseDomainShift(text: string): DomainShift {
  const parts = text.trim().split(':');
  if (parts.length !== 2) throw new Error(`'${text}' is not FAMILY:SEVERITY (e.g. fog:3); ${VALID}`);
  const [family, severity] = parts;
  if (!(CORRUPTION_FAMILIES as readonly string[]).includes(family)) throw new Error(`unknown corruption family '${family}' in '${text}'; ${VALID}`);
  const level = Number(severity);
  if (!(SEVERITIES as readonly number[]).includes(level) || !/^\d+$/.test(severity)) throw new Error(`severity '${severity}' in '${text}' is not one of ${SEVERITIES.join(', ')}`);
  return { family: family as CorruptionFamily, severity: level as Severity };
}

function checkShift(shift: DomainShift): void {
  if (!CORRUPTION_FAMILIES.includes(shift.family) || !SEVERITIES.includes(shift.severity)) {
    throw new Error(`domain shift ${JSON.stringify(shift)} is not a known family and severity; ${VALID}`);
  }
}

/** `fog-3`. */
export const shiftName = (shift: DomainShift): string => `${shift.family}-${shift.severity}`;

/** `cifar10-fog-3`: the dataset a shift of `base` is stored as. */
export const shiftedDatasetName = (base: string, shift: DomainShift, seed = 0): string => `${base}-${shiftName(shift)}${seed ? `-seed${seed}` : ''}`;

/** The random source of image `index` of a split: independent of every other image. */
export function imageRandom(seed: number, split: SplitName, index: number): () => number {
  const splitSalt = split === 'train' ? 0x1b873593 : 0xcc9e2d51;
  return mulberry32(fmix32(fmix32(fmix32(seed ^ 0x5bd1e995) ^ splitSalt) ^ Math.imul(index + 1, 0x9e3779b9)));
}

/** Corrupts one image in place: 3 planes of 32×32 floats in [0, 1], possibly left out of range. */
type Corrupt = (pixels: Float32Array, random: () => number) => void;

const PLANE = IMAGE_SIZE * IMAGE_SIZE;
/** Byte value → [0, 1]. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * The images of `split` corrupted (a new split; labels copied). `indices[i]` is the index within the full
 * split of image i, which seeds its randomness (default: i), so a gathered subset corrupts consistently.
 */
export function corruptSplit(split: CifarSplit, shift: DomainShift, seed: number, splitName: SplitName, indices?: ArrayLike<number>): CifarSplit {
  checkShift(shift);
  if (indices && indices.length !== split.count) throw new Error(`corruptSplit: ${indices.length} indices for ${split.count} images`);
  const corrupt = corrupter(shift);
  const images = new Uint8Array(split.count * IMAGE_BYTES);
  const pixels = new Float32Array(IMAGE_BYTES);
  for (let i = 0; i < split.count; i++) {
    const at = i * IMAGE_BYTES;
    for (let p = 0; p < IMAGE_BYTES; p++) pixels[p] = UNIT[split.images[at + p]];
    corrupt(pixels, imageRandom(seed, splitName, indices ? indices[i] : i));
    for (let p = 0; p < IMAGE_BYTES; p++) {
      const v = pixels[p] * 255;
      // Clamped in float before the write (a Uint8Array would wrap 256 to 0); v + 0.5 | 0 rounds v ≥ 0.
      images[at + p] = v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
    }
  }
  return { images, labels: split.labels.slice(), count: split.count };
}

/** Both splits corrupted with the same shift and seed; the classes kept. */
export function corruptCifar10(data: Cifar10, shift: DomainShift, seed = 0): Cifar10 {
  return { train: corruptSplit(data.train, shift, seed, 'train'), test: corruptSplit(data.test, shift, seed, 'test'), classes: [...data.classes] };
}

function corrupter(shift: DomainShift): Corrupt {
  const s = shift.severity - 1;
  const p = SEVERITY_PARAMETERS;
  switch (shift.family) {
    case 'gaussian_noise':
      return gaussianNoise(p.gaussian_noise[s]);
    case 'shot_noise':
      return shotNoise(p.shot_noise[s]);
    case 'gaussian_blur':
      return gaussianBlur(p.gaussian_blur[s]);
    case 'contrast':
      return contrast(p.contrast[s]);
    case 'fog':
      return fog(p.fog[s][0], p.fog[s][1]);
    case 'jpeg':
      return jpeg(p.jpeg[s]);
    case 'pixelate':
      return pixelate(p.pixelate[s]);
    case 'color_shift':
      return colorShift(p.color_shift[s][0], p.color_shift[s][1]);
  }
}

// ---- noise ----

/** Standard normal draws (Box–Muller, two per pair of uniforms). */
function fillNormals(out: Float32Array, random: () => number): void {
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - random()));
    const a = 2 * Math.PI * random();
    out[i] = r * Math.cos(a);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(a);
  }
}

function gaussianNoise(sigma: number): Corrupt {
  const z = new Float32Array(IMAGE_BYTES);
  return (px, random) => {
    fillNormals(z, random);
    for (let p = 0; p < IMAGE_BYTES; p++) px[p] += sigma * z[p];
  };
}

/**
 * Poisson(x·photons)/photons, sampled exactly by inverting a CDF table per byte value (x takes only 256
 * values): one uniform and a binary search per pixel, where Knuth's method would take up to 500 draws.
 */
function shotNoise(photons: number): Corrupt {
  // The 256 tables end to end: value v's CDF is cdf[start[v] … start[v + 1] − 1], over counts first[v] + i.
  const tables = Array.from({ length: 256 }, (_, v) => poissonCdf((v / 255) * photons));
  const start = new Int32Array(257);
  tables.forEach((t, v) => (start[v + 1] = start[v] + t.cdf.length));
  const first = Int32Array.from(tables, (t) => t.first);
  const cdf = new Float64Array(start[256]);
  tables.forEach((t, v) => cdf.set(t.cdf, start[v]));
  return (px, random) => {
    for (let p = 0; p < IMAGE_BYTES; p++) {
      const v = (px[p] * 255 + 0.5) | 0;
      const u = random();
      let lo = start[v];
      let hi = start[v + 1] - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      px[p] = (first[v] + lo - start[v]) / photons;
    }
  };
}

const LOG_FACTORIAL = (() => {
  const t = new Float64Array(1024);
  for (let k = 1; k < t.length; k++) t[k] = t[k - 1] + Math.log(k);
  return t;
})();

/** The CDF of Poisson(λ) over first … first + length − 1 (±12 sd around λ), normalised to end at 1. */
function poissonCdf(lambda: number): { first: number; cdf: Float64Array } {
  if (lambda === 0) return { first: 0, cdf: Float64Array.of(1) };
  const spread = 12 * Math.sqrt(lambda) + 10;
  const first = Math.max(0, Math.floor(lambda - spread));
  const last = Math.min(LOG_FACTORIAL.length - 1, Math.ceil(lambda + spread));
  const cdf = new Float64Array(last - first + 1);
  let sum = 0;
  for (let k = first; k <= last; k++) {
    sum += Math.exp(k * Math.log(lambda) - lambda - LOG_FACTORIAL[k]);
    cdf[k - first] = sum;
  }
  for (let i = 0; i < cdf.length; i++) cdf[i] /= sum;
  cdf[cdf.length - 1] = 1;
  return { first, cdf };
}

// ---- blur ----

/** Separable Gaussian, radius round(4σ) and edges clamped, as skimage's `gaussian` in CIFAR-10-C. */
function gaussianBlur(sigma: number): Corrupt {
  const radius = Math.max(1, Math.round(4 * sigma));
  const kernel = new Float32Array(2 * radius + 1);
  for (let t = -radius; t <= radius; t++) kernel[t + radius] = Math.exp((-t * t) / (2 * sigma * sigma));
  const total = kernel.reduce((a, b) => a + b, 0);
  for (let t = 0; t < kernel.length; t++) kernel[t] /= total;
  const n = IMAGE_SIZE;
  const taps = kernel.length;
  // One row or column at a time, copied with its edges extended by `radius` so the taps need no clamping.
  const line = new Float32Array(n + 2 * radius);
  const tmp = new Float32Array(PLANE);
  const convolve = (from: Float32Array, to: Float32Array, start: number, stride: number) => {
    for (let k = 0; k < line.length; k++) line[k] = from[start + stride * Math.min(n - 1, Math.max(0, k - radius))];
    for (let x = 0; x < n; x++) {
      let acc = 0;
      for (let t = 0; t < taps; t++) acc += kernel[t] * line[x + t];
      to[start + stride * x] = acc;
    }
  };
  return (px) => {
    for (let c = 0; c < 3; c++) {
      const plane = px.subarray(c * PLANE, (c + 1) * PLANE);
      for (let y = 0; y < n; y++) convolve(plane, tmp, y * n, 1);
      for (let x = 0; x < n; x++) convolve(tmp, plane, x, n);
    }
  };
}

// ---- contrast ----

/** Each channel pulled toward its own mean, as CIFAR-10-C (mean over height and width). */
function contrast(factor: number): Corrupt {
  return (px) => {
    for (let c = 0; c < 3; c++) {
      const plane = px.subarray(c * PLANE, (c + 1) * PLANE);
      let mean = 0;
      for (let p = 0; p < PLANE; p++) mean += plane[p];
      mean /= PLANE;
      for (let p = 0; p < PLANE; p++) plane[p] = (plane[p] - mean) * factor + mean;
    }
  };
}

// ---- weather ----

/** CIFAR-10-C's fog: a plasma fractal added to every channel, then rescaled to keep the image's maximum. */
function fog(strength: number, decay: number): Corrupt {
  const field = new Float64Array(PLANE);
  return (px, random) => {
    plasmaFractal(field, decay, random);
    let max = 0;
    for (let p = 0; p < IMAGE_BYTES; p++) max = Math.max(max, px[p]);
    const scale = max / (max + strength);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < PLANE; p++) px[c * PLANE + p] = (px[c * PLANE + p] + strength * field[p]) * scale;
    }
  };
}

/**
 * Diamond-square on a 32×32 torus (make_cifar_c.py's plasma_fractal): each step sets the square centres
 * and then the diamond midpoints to their neighbours' mean plus uniform noise of ±wibble², with wibble
 * divided by `decay` each step (a larger decay, a smoother field); the result is rescaled to [0, 1].
 */
export function plasmaFractal(map: Float64Array, decay: number, random: () => number): void {
  const n = IMAGE_SIZE;
  const m = n - 1; // n is a power of two: & m wraps around the torus
  const at = (y: number, x: number) => (y & m) * n + (x & m);
  map.fill(0);
  let wibble = 100;
  const wibbled = (sum: number) => sum / 4 + wibble * (2 * random() - 1) * wibble;
  for (let step = n; step >= 2; step >>= 1) {
    const h = step >> 1;
    for (let y = 0; y < n; y += step) {
      for (let x = 0; x < n; x += step) map[at(y + h, x + h)] = wibbled(map[at(y, x)] + map[at(y + step, x)] + map[at(y, x + step)] + map[at(y + step, x + step)]);
    }
    for (let y = 0; y < n; y += step) {
      for (let x = 0; x < n; x += step) {
        map[at(y, x + h)] = wibbled(map[at(y + h, x + h)] + map[at(y - h, x + h)] + map[at(y, x)] + map[at(y, x + step)]);
        map[at(y + h, x)] = wibbled(map[at(y + h, x + h)] + map[at(y + h, x - h)] + map[at(y, x)] + map[at(y + step, x)]);
      }
    }
    wibble /= decay;
  }
  let min = Infinity;
  let max = -Infinity;
  for (let p = 0; p < map.length; p++) {
    if (map[p] < min) min = map[p];
    if (map[p] > max) max = map[p];
  }
  const range = max - min || 1;
  for (let p = 0; p < map.length; p++) map[p] = (map[p] - min) / range;
}

// ---- digital ----

/** The JPEG standard's example quantisation tables (ITU T.81 Annex K), row = vertical frequency. */
const LUMA_QUANT = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64,
  78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA_QUANT = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99, ...new Array<number>(32).fill(99),
];

/** A base table scaled to a quality as libjpeg (IJG) does, entries held to 1 … 255 (baseline). */
export function quantTable(base: readonly number[], quality: number): Float32Array {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  const scale = q < 50 ? 5000 / q : 200 - 2 * q;
  return Float32Array.from(base, (b) => Math.min(255, Math.max(1, Math.floor((b * scale + 50) / 100))));
}

/** Orthonormal DCT-II basis: COS[u·8 + x] = c(u)/2 · cos((2x + 1)uπ/16). */
const COS = (() => {
  const t = new Float64Array(64);
  for (let u = 0; u < 8; u++) for (let x = 0; x < 8; x++) t[u * 8 + x] = ((u === 0 ? Math.SQRT1_2 : 1) / 2) * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
  return t;
})();
const dctScratch = new Float64Array(64);

/** 8×8 DCT-II of a row-major block: out[v·8 + u], v the vertical frequency. */
export function dct8x8(block: ArrayLike<number>, out: Float32Array): void {
  const t = dctScratch;
  for (let v = 0; v < 8; v++) {
    for (let x = 0; x < 8; x++) {
      let acc = 0;
      for (let y = 0; y < 8; y++) acc += COS[v * 8 + y] * block[y * 8 + x];
      t[v * 8 + x] = acc;
    }
  }
  for (let v = 0; v < 8; v++) {
    for (let u = 0; u < 8; u++) {
      let acc = 0;
      for (let x = 0; x < 8; x++) acc += t[v * 8 + x] * COS[u * 8 + x];
      out[v * 8 + u] = acc;
    }
  }
}

/** The inverse of dct8x8. */
export function idct8x8(coefficients: ArrayLike<number>, out: Float32Array): void {
  const t = dctScratch;
  for (let y = 0; y < 8; y++) {
    for (let u = 0; u < 8; u++) {
      let acc = 0;
      for (let v = 0; v < 8; v++) acc += COS[v * 8 + y] * coefficients[v * 8 + u];
      t[y * 8 + u] = acc;
    }
  }
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      let acc = 0;
      for (let u = 0; u < 8; u++) acc += t[y * 8 + u] * COS[u * 8 + x];
      out[y * 8 + x] = acc;
    }
  }
}

/**
 * JPEG's loss without its (lossless) entropy coding: YCbCr, 4:2:0 chroma (2×2 means), level shift,
 * 8×8 DCT, quantisation with the quality-scaled standard tables, dequantisation, IDCT, libjpeg's
 * "fancy" (triangle) chroma upsampling, RGB.
 */
function jpeg(quality: number): Corrupt {
  const lumaQ = quantTable(LUMA_QUANT, quality);
  const chromaQ = quantTable(CHROMA_QUANT, quality);
  const n = IMAGE_SIZE;
  const half = n / 2;
  const luma = new Float32Array(PLANE);
  const cbFull = new Float32Array(PLANE);
  const crFull = new Float32Array(PLANE);
  const cb = new Float32Array(half * half);
  const cr = new Float32Array(half * half);
  const block = new Float32Array(64);
  const coef = new Float32Array(64);

  const lossy = (plane: Float32Array, width: number, q: Float32Array) => {
    for (let by = 0; by < width; by += 8) {
      for (let bx = 0; bx < width; bx += 8) {
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) block[y * 8 + x] = plane[(by + y) * width + bx + x];
        dct8x8(block, coef);
        for (let k = 0; k < 64; k++) coef[k] = Math.round(coef[k] / q[k]) * q[k];
        idct8x8(coef, block);
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) plane[(by + y) * width + bx + x] = block[y * 8 + x];
      }
    }
  };
  const downsample = (full: Float32Array, out: Float32Array) => {
    for (let y = 0; y < half; y++) {
      for (let x = 0; x < half; x++) {
        const p = 2 * y * n + 2 * x;
        out[y * half + x] = (full[p] + full[p + 1] + full[p + n] + full[p + n + 1]) / 4;
      }
    }
  };
  // Each full-resolution pixel: 9/16 of its chroma sample, 3/16 of each nearer neighbour, 1/16 diagonal.
  const upsample = (small: Float32Array, full: Float32Array) => {
    const clampHalf = (i: number) => Math.min(half - 1, Math.max(0, i));
    for (let y = 0; y < n; y++) {
      const sy = y >> 1;
      const ny = clampHalf(y & 1 ? sy + 1 : sy - 1);
      for (let x = 0; x < n; x++) {
        const sx = x >> 1;
        const nx = clampHalf(x & 1 ? sx + 1 : sx - 1);
        full[y * n + x] = (9 * small[sy * half + sx] + 3 * small[ny * half + sx] + 3 * small[sy * half + nx] + small[ny * half + nx]) / 16;
      }
    }
  };

  return (px) => {
    for (let p = 0; p < PLANE; p++) {
      const r = px[p] * 255;
      const g = px[PLANE + p] * 255;
      const b = px[2 * PLANE + p] * 255;
      luma[p] = 0.299 * r + 0.587 * g + 0.114 * b - 128;
      cbFull[p] = -0.168736 * r - 0.331264 * g + 0.5 * b;
      crFull[p] = 0.5 * r - 0.418688 * g - 0.081312 * b;
    }
    downsample(cbFull, cb);
    downsample(crFull, cr);
    lossy(luma, n, lumaQ);
    lossy(cb, half, chromaQ);
    lossy(cr, half, chromaQ);
    upsample(cb, cbFull);
    upsample(cr, crFull);
    for (let p = 0; p < PLANE; p++) {
      const y = luma[p] + 128;
      px[p] = (y + 1.402 * crFull[p]) / 255;
      px[PLANE + p] = (y - 0.344136 * cbFull[p] - 0.714136 * crFull[p]) / 255;
      px[2 * PLANE + p] = (y + 1.772 * cbFull[p]) / 255;
    }
  };
}

/**
 * Box (area-weighted) downsampling to floor(32·fraction) a side, then nearest-neighbour back to 32, as
 * CIFAR-10-C's pair of PIL BOX resizes.
 */
function pixelate(fraction: number): Corrupt {
  const n = IMAGE_SIZE;
  const small = Math.floor(n * fraction);
  const { first, weights } = boxWeights(n, small);
  const span = weights.length / small;
  const nearest = Int32Array.from({ length: n }, (_, j) => Math.floor(((j + 0.5) * small) / n));
  const rows = new Float32Array(n * small);
  const cells = new Float32Array(small * small);
  return (px) => {
    for (let c = 0; c < 3; c++) {
      const plane = px.subarray(c * PLANE, (c + 1) * PLANE);
      for (let y = 0; y < n; y++) {
        for (let j = 0; j < small; j++) {
          let acc = 0;
          for (let t = 0; t < span; t++) acc += weights[j * span + t] * plane[y * n + first[j] + t];
          rows[y * small + j] = acc;
        }
      }
      for (let k = 0; k < small; k++) {
        for (let j = 0; j < small; j++) {
          let acc = 0;
          for (let t = 0; t < span; t++) acc += weights[k * span + t] * rows[(first[k] + t) * small + j];
          cells[k * small + j] = acc;
        }
      }
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) plane[y * n + x] = cells[nearest[y] * small + nearest[x]];
    }
  };
}

/**
 * Area weights of box resampling `from` → `to` pixels: output j covers source pixels first[j] … first[j] +
 * span − 1 with weights[j·span + t] (summing to 1; trailing ones 0, and never past the edge).
 */
function boxWeights(from: number, to: number): { first: Int32Array; weights: Float32Array } {
  const width = from / to;
  const span = Math.ceil(width) + 1;
  const first = new Int32Array(to);
  const weights = new Float32Array(to * span);
  for (let j = 0; j < to; j++) {
    const start = j * width;
    const end = start + width;
    first[j] = Math.min(from - span, Math.floor(start));
    for (let t = 0; t < span; t++) {
      const i = first[j] + t;
      weights[j * span + t] = Math.max(0, Math.min(end, i + 1) - Math.max(start, i)) / width;
    }
  }
  return { first, weights };
}

// ---- colour ----

/**
 * A fixed colour cast for the whole domain (a camera's, say), the same for every image: a hue rotation
 * about the grey axis (greys stay grey) followed by red gain 1 + k and blue gain 1 − k.
 */
function colorShift(degrees: number, cast: number): Corrupt {
  const theta = (degrees * Math.PI) / 180;
  const a = Math.cos(theta) + (1 - Math.cos(theta)) / 3;
  const b = (1 - Math.cos(theta)) / 3 - Math.sin(theta) / Math.sqrt(3);
  const c = (1 - Math.cos(theta)) / 3 + Math.sin(theta) / Math.sqrt(3);
  return (px) => {
    for (let p = 0; p < PLANE; p++) {
      const r = px[p];
      const g = px[PLANE + p];
      const bl = px[2 * PLANE + p];
      px[p] = (a * r + b * g + c * bl) * (1 + cast);
      px[PLANE + p] = c * r + a * g + b * bl;
      px[2 * PLANE + p] = (b * r + c * g + a * bl) * (1 - cast);
    }
  };
}
