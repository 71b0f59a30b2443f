// Shifted domains made from CIFAR-10: deterministic per image, clamped to valid bytes, graded by severity,
// and a JPEG that is a real transform coder. Small generated images only.
import { describe, expect, it } from 'vitest';
import { IMAGE_BYTES, type CifarSplit } from '../../shared/data/cifar';
import {
  CORRUPTION_CATEGORY,
  CORRUPTION_FAMILIES,
  SEVERITIES,
  SEVERITY_PARAMETERS,
  corruptCifar10,
  corruptSplit,
  dct8x8,
  idct8x8,
  imageRandom,
  parseDomainShift,
  plasmaFractal,
  quantTable,
  shiftName,
  shiftedDatasetName,
  type CorruptionFamily,
  type DomainShift,
} from '../../shared/data/corruptions';
import { mulberry32 } from '../../shared/data/shuffle';

const PLANE = 1024;
const BLACK = 0;
const WHITE = 1;

/** Image 0 all 0, image 1 all 255, then smooth gradients with texture, then uniform random bytes. */
function makeSplit(count = 24): CifarSplit {
  const random = mulberry32(1234);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  images.fill(255, WHITE * IMAGE_BYTES, (WHITE + 1) * IMAGE_BYTES);
  for (let i = 2; i < count; i++) {
    labels[i] = i % 10;
    const smooth = i % 2 === 0;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < PLANE; p++) {
        const [y, x] = [p >> 5, p & 31];
        const v = smooth ? 128 + 90 * Math.sin((x + 3 * c + i) / 5) * Math.cos((y - i) / 7) + 20 * (random() - 0.5) : random() * 256;
        images[i * IMAGE_BYTES + c * PLANE + p] = Math.max(0, Math.min(255, Math.floor(v)));
      }
    }
  }
  labels[BLACK] = 3;
  labels[WHITE] = 7;
  return { images, labels, count };
}

const split = makeSplit();
const image = (s: CifarSplit, i: number) => s.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
const meanAbsDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;
const shift = (family: CorruptionFamily, severity: DomainShift['severity']): DomainShift => ({ family, severity });

describe('corruption families', () => {
  it('lists every family once, each with a category and 5 severities of parameters', () => {
    expect(new Set(CORRUPTION_FAMILIES).size).toBe(CORRUPTION_FAMILIES.length);
    for (const family of CORRUPTION_FAMILIES) {
      expect(['noise', 'blur', 'contrast', 'weather', 'digital', 'color']).toContain(CORRUPTION_CATEGORY[family]);
      expect(SEVERITY_PARAMETERS[family]).toHaveLength(5);
    }
    expect(new Set(Object.values(CORRUPTION_CATEGORY)).size).toBe(6);
  });
});

describe('determinism', () => {
  it('the same seed gives byte-identical images, for every family', () => {
    for (const family of CORRUPTION_FAMILIES) {
      const a = corruptSplit(split, shift(family, 3), 5, 'train');
      const b = corruptSplit(split, shift(family, 3), 5, 'train');
      expect(Buffer.from(a.images).equals(Buffer.from(b.images)), family).toBe(true);
    }
  });

  it('a subset corrupted alone, in any order, equals the same images within the whole split', () => {
    const indices = [19, 2, 7, 1, 0];
    const subset: CifarSplit = { images: new Uint8Array(indices.length * IMAGE_BYTES), labels: Uint8Array.from(indices, (i) => split.labels[i]), count: indices.length };
    indices.forEach((g, i) => subset.images.set(image(split, g), i * IMAGE_BYTES));
    for (const family of CORRUPTION_FAMILIES) {
      const whole = corruptSplit(split, shift(family, 4), 9, 'test');
      const alone = corruptSplit(subset, shift(family, 4), 9, 'test', indices);
      indices.forEach((g, i) => expect(Buffer.from(image(alone, i)).equals(Buffer.from(image(whole, g))), `${family} image ${g}`).toBe(true));
    }
  });

  it('a different seed, or the other split, gives different images for the random families', () => {
    for (const family of ['gaussian_noise', 'shot_noise', 'fog'] as const) {
      const a = corruptSplit(split, shift(family, 3), 1, 'train').images;
      expect(meanAbsDiff(a, corruptSplit(split, shift(family, 3), 2, 'train').images), family).toBeGreaterThan(1);
      expect(meanAbsDiff(a, corruptSplit(split, shift(family, 3), 1, 'test').images), family).toBeGreaterThan(1);
    }
  });

  it('image generators are independent of each other and of the seed', () => {
    const first = (seed: number, index: number) => imageRandom(seed, 'train', index)();
    const draws = new Set([first(0, 0), first(0, 1), first(1, 0), first(1, 1), imageRandom(0, 'test', 0)()]);
    expect(draws.size).toBe(5);
  });
});

describe('valid pixels', () => {
  it('every family and severity gives count × 3072 bytes and the labels unchanged', () => {
    for (const family of CORRUPTION_FAMILIES) {
      for (const severity of SEVERITIES) {
        const out = corruptSplit(split, shift(family, severity), 0, 'train');
        expect(out.images).toBeInstanceOf(Uint8Array);
        expect(out.images.length).toBe(split.count * IMAGE_BYTES);
        expect(out.count).toBe(split.count);
        expect([...out.labels]).toEqual([...split.labels]);
        expect(out.labels).not.toBe(split.labels);
      }
    }
  });

  it('gaussian noise is clamped at 0 and 255, not wrapped: it matches a float reference', () => {
    const sigma = SEVERITY_PARAMETERS.gaussian_noise[4];
    const out = corruptSplit(split, shift('gaussian_noise', 5), 3, 'train');
    for (const [index, value] of [[BLACK, 0], [WHITE, 255]] as const) {
      // The same Box–Muller draws the module makes, in double precision.
      const random = imageRandom(3, 'train', index);
      const noisy = image(out, index);
      for (let p = 0; p < 64; p += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - random()));
        const a = 2 * Math.PI * random();
        for (const [q, z] of [[p, r * Math.cos(a)], [p + 1, r * Math.sin(a)]]) {
          const reference = Math.min(255, Math.max(0, Math.round(value + 255 * sigma * z)));
          expect(Math.abs(noisy[q] - reference), `pixel ${q} of ${value}`).toBeLessThanOrEqual(1);
        }
      }
      // About half the draws push past the edge and stay there; a wrap would scatter them across 0 … 255.
      const atEdge = noisy.filter((v) => v === value).length / noisy.length;
      expect(atEdge).toBeGreaterThan(0.4);
      expect(atEdge).toBeLessThan(0.6);
      expect(noisy.every((v) => Math.abs(v - value) < 6 * 255 * sigma)).toBe(true);
    }
  });

  it('a gain above 1 saturates white at 255 (colour shift, contrast of extremes)', () => {
    const white = image(corruptSplit(split, shift('color_shift', 5), 0, 'train'), WHITE);
    // Red gain 1.1 would wrap 280 to 24; blue gain 0.9 gives 230; greys stay grey under the rotation.
    expect(white.subarray(0, PLANE).every((v) => v === 255)).toBe(true);
    expect(white.subarray(2 * PLANE).every((v) => Math.abs(v - 0.9 * 255) <= 1)).toBe(true);
    for (const family of CORRUPTION_FAMILIES) {
      const out = corruptSplit(split, shift(family, 5), 0, 'train');
      expect(Math.max(...image(out, WHITE)), family).toBeGreaterThan(200);
      expect(Math.min(...image(out, BLACK)), family).toBeLessThan(40);
    }
  });
});

describe('graded severities', () => {
  const clean = split.images;
  const differences = (family: CorruptionFamily) => SEVERITIES.map((s) => meanAbsDiff(corruptSplit(split, shift(family, s), 0, 'train').images, clean));

  it.each(CORRUPTION_FAMILIES)('%s: the mean absolute change grows from severity 1 to 5', (family) => {
    const d = differences(family);
    for (let s = 1; s < d.length; s++) expect(d[s], `${family} severity ${s + 1} vs ${s}: ${d.map((x) => x.toFixed(2)).join(' ')}`).toBeGreaterThan(d[s - 1]);
    expect(d[0]).toBeGreaterThan(0.3);
  });

  it('every family at severity 3 changes the images, and the labels stay', () => {
    for (const family of CORRUPTION_FAMILIES) {
      const out = corruptCifar10({ train: split, test: split, classes: ['a', 'b'] }, shift(family, 3), 0);
      expect(meanAbsDiff(out.train.images, clean), family).toBeGreaterThan(1);
      expect([...out.test.labels]).toEqual([...split.labels]);
      expect(out.classes).toEqual(['a', 'b']);
    }
  });
});

describe('jpeg', () => {
  it('the DCT/IDCT pair round-trips a block; the DC term is 8 × the mean', () => {
    const random = mulberry32(99);
    const block = Float32Array.from({ length: 64 }, () => Math.floor(random() * 256) - 128);
    const coefficients = new Float32Array(64);
    const back = new Float32Array(64);
    dct8x8(block, coefficients);
    idct8x8(coefficients, back);
    for (let k = 0; k < 64; k++) expect(Math.abs(back[k] - block[k])).toBeLessThan(1e-3);
    expect(coefficients[0]).toBeCloseTo(block.reduce((a, b) => a + b, 0) / 8, 3);
  });

  it('scales the quantisation tables as libjpeg: quality 50 is the standard table, 100 all ones', () => {
    const luma = [16, 11, 10, 16, 24, 40, 51, 61];
    expect([...quantTable(luma, 50)]).toEqual(luma);
    expect([...quantTable(luma, 100)]).toEqual(luma.map(() => 1));
    expect([...quantTable(luma, 40)]).toEqual(luma.map((b) => Math.floor((b * 125 + 50) / 100)));
  });

  it('a flat colour survives almost unchanged; texture does not', () => {
    const flat: CifarSplit = { images: new Uint8Array(IMAGE_BYTES), labels: new Uint8Array(1), count: 1 };
    [200, 120, 40].forEach((v, c) => flat.images.fill(v, c * PLANE, (c + 1) * PLANE));
    const out = corruptSplit(flat, shift('jpeg', 5), 0, 'train');
    expect(out.images.every((v, i) => Math.abs(v - flat.images[i]) <= 2)).toBe(true);
    const textured = corruptSplit(split, shift('jpeg', 5), 0, 'train');
    expect(meanAbsDiff(image(textured, 3), image(split, 3))).toBeGreaterThan(5);
  });
});

describe('fog field', () => {
  it('is a plasma fractal in [0, 1], smoother with a larger decay', () => {
    const roughness = (decay: number) => {
      const map = new Float64Array(1024);
      plasmaFractal(map, decay, mulberry32(5));
      expect(Math.min(...map)).toBe(0);
      expect(Math.max(...map)).toBe(1);
      let step = 0;
      for (let p = 0; p < 1024; p++) step += Math.abs(map[p] - map[(p & ~31) | ((p + 1) & 31)]);
      return step / 1024;
    };
    expect(roughness(3)).toBeLessThan(roughness(1.5));
  });
});

describe('names', () => {
  it('parses FAMILY:SEVERITY', () => {
    expect(parseDomainShift('fog:3')).toEqual({ family: 'fog', severity: 3 });
    expect(parseDomainShift(' jpeg:5 ')).toEqual({ family: 'jpeg', severity: 5 });
  });

  it('refuses a bad severity, an unknown family and a missing severity, naming the problem and the valid values', () => {
    expect(() => parseDomainShift('fog:6')).toThrow("severity '6' in 'fog:6' is not one of 1, 2, 3, 4, 5");
    expect(() => parseDomainShift('fog:2.0')).toThrow("severity '2.0'");
    expect(() => parseDomainShift('nope:1')).toThrow(/^unknown corruption family 'nope' in 'nope:1'; families: gaussian_noise, shot_noise, .*color_shift; severities: 1, 2, 3, 4, 5$/);
    expect(() => parseDomainShift('fog')).toThrow(/^'fog' is not FAMILY:SEVERITY \(e\.g\. fog:3\); families: /);
  });

  it('names a shift and its dataset', () => {
    expect(shiftName({ family: 'fog', severity: 3 })).toBe('fog-3');
    expect(shiftedDatasetName('cifar10', { family: 'jpeg', severity: 5 })).toBe('cifar10-jpeg-5');
    expect(shiftedDatasetName('cifar10', { family: 'jpeg', severity: 5 }, 7)).toBe('cifar10-jpeg-5-seed7');
  });

  it('corruptSplit refuses an unknown shift and a wrong number of indices', () => {
    expect(() => corruptSplit(split, { family: 'fog', severity: 6 as 5 }, 0, 'train')).toThrow('not a known family and severity');
    expect(() => corruptSplit(split, shift('fog', 1), 0, 'train', [0, 1])).toThrow('2 indices for 24 images');
  });
});
