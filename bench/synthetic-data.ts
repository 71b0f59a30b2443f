// Generated datasets in CIFAR-10's shape for the benches: seeded random images (for benches that
// compute on them) and blank ones (for benches that only lease them).
import { IMAGE_BYTES, type Cifar10, type CifarSplit } from '../shared/data/cifar';
import { mulberry32 } from '../shared/data/shuffle';

const CLASSES = Array.from({ length: 10 }, (_, i) => `class${i}`);

function randomSplit(count: number, seed: number): CifarSplit {
  const rng = mulberry32(seed);
  const images = new Uint8Array(count * IMAGE_BYTES);
  for (let i = 0; i < images.length; i++) images[i] = (rng() * 256) | 0;
  const labels = Uint8Array.from({ length: count }, () => (rng() * 10) | 0);
  return { images, labels, count };
}

/** Seeded random images and labels: `train` and `test` records. */
export const syntheticCifar = (train: number, test: number): Cifar10 => ({ train: randomSplit(train, 1), test: randomSplit(test, 2), classes: CLASSES });

/** A dataset of blank images: what the synthetic benches lease, never read. */
export function blankData(train: number, test: number): Cifar10 {
  const split = (count: number) => ({ images: new Uint8Array(count * IMAGE_BYTES), labels: Uint8Array.from({ length: count }, (_, i) => i % 10), count });
  return { train: split(train), test: split(test), classes: CLASSES };
}
