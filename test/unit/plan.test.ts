// RunPlan (which examples form each step and shard) and BatchFeeder's shard equivalence: the two
// properties the distributed runtime's "same result as the single-process trainer" rests on.
import { describe, expect, it } from 'vitest';
import { IMAGE_BYTES, assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { CIFAR10_NORMALIZATION, SEED_NORMALIZATION, fillBatch } from '../../shared/data/normalize';
import { epochOrder, exampleRng } from '../../shared/data/shuffle';
import { buildTrainingGraph } from '../../shared/models/compile';
import { TEXT_DIM } from '../../shared/models/heads';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../../shared/models/presets';
import type { Feed } from '../../shared/onnx/session';
import { placeholderCaptions } from '../../shared/training/caption-feed';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../../shared/training/config';
import { BatchFeeder, dannLambda } from '../../shared/training/feeder';
import { RunPlan, type PlanConfig } from '../../shared/training/plan';
import { fixtureFiles } from '../support/cifar-fixture';

const planConfig = (over: Partial<TrainConfig> = {}): PlanConfig => ({ ...SEED_TRAIN_CONFIG, batch: 8, epochs: 3, seed: 5, trainLimit: 0, shuffleBlock: 0, ...over });
const dannModel: ModelConfig = { ...DEFAULT_MODEL_CONFIG, dann: true };
const concat = (parts: ArrayLike<number>[]) => parts.flatMap((p) => Array.from(p));

describe('RunPlan sizes and schedule', () => {
  it('derives steps per epoch and total steps from the data size, dropping the ragged tail', () => {
    const plan = new RunPlan(planConfig(), 103);
    expect(plan.trainCount).toBe(103);
    expect(plan.stepsPerEpoch).toBe(12); // floor(103 / 8)
    expect(plan.totalSteps).toBe(36);
  });

  it('uses only the first trainLimit examples when set, and all of them when the limit exceeds the data', () => {
    const limited = new RunPlan(planConfig({ trainLimit: 50 }), 103);
    expect(limited.trainCount).toBe(50);
    expect(limited.stepsPerEpoch).toBe(6);
    expect(limited.totalSteps).toBe(18);
    for (let step = 0; step < limited.totalSteps; step++) {
      expect(Array.from(limited.examples(step).indices).every((i) => i < 50)).toBe(true);
    }
    const loose = new RunPlan(planConfig({ trainLimit: 1000 }), 103);
    expect(loose.trainCount).toBe(103);
    expect(loose.totalSteps).toBe(36);
  });

  it('resolves schedule totalSteps 0 to the run length and keeps an explicit one', () => {
    const whole = new RunPlan(planConfig({ schedule: { warmupSteps: 2, decay: 'cosine', totalSteps: 0, minLrFactor: 0.1 } }), 103);
    expect(whole.schedule).toEqual({ warmupSteps: 2, decay: 'cosine', totalSteps: 36, minLrFactor: 0.1 });
    const fixed = new RunPlan(planConfig({ schedule: { warmupSteps: 2, decay: 'linear', totalSteps: 20, minLrFactor: 0 } }), 103);
    expect(fixed.schedule).toEqual({ warmupSteps: 2, decay: 'linear', totalSteps: 20, minLrFactor: 0 });
  });

  it('rejects a schedule that is invalid once totalSteps 0 is resolved to the run length', () => {
    // Warm-up of 100 steps in a 36-step run cannot decay: the reference trainer rejects this (checkTrainConfig
    // on the resolved schedule), so the plan, which the coordinator builds the same way, must too.
    const config = planConfig({ schedule: { warmupSteps: 100, decay: 'cosine', totalSteps: 0, minLrFactor: 0 } });
    expect(() => new RunPlan(config, 103)).toThrow('schedule.totalSteps: 36 must be greater than warmupSteps (100) for cosine decay');
    expect(new RunPlan(planConfig({ schedule: { warmupSteps: 100, decay: 'constant', totalSteps: 0, minLrFactor: 0 } }), 103).schedule.totalSteps).toBe(36);
  });

  it('rejects a training set smaller than one batch with a message naming both sizes', () => {
    expect(() => new RunPlan(planConfig(), 7)).toThrow('training set of 7 images is smaller than one batch of 8');
    expect(() => new RunPlan(planConfig({ trainLimit: 5 }), 1000)).toThrow('training set of 5 images is smaller than one batch of 8');
    expect(new RunPlan(planConfig(), 8).totalSteps).toBe(3);
  });
});

describe('RunPlan.examples', () => {
  for (const shuffleBlock of [0, 16]) {
    it(`consecutive steps tile the epoch order (shuffleBlock ${shuffleBlock})`, () => {
      const plan = new RunPlan(planConfig({ shuffleBlock }), 103);
      for (const epoch of [0, 1, 2]) {
        const steps = Array.from({ length: 12 }, (_, s) => plan.examples(epoch * 12 + s));
        steps.forEach((ex, s) => {
          expect(ex.epoch).toBe(epoch);
          expect(ex.firstPosition).toBe(s * 8);
          expect(ex.indices.length).toBe(8);
          expect(ex.dann).toBeUndefined();
        });
        expect(concat(steps.map((ex) => ex.indices))).toEqual(Array.from(epochOrder(103, 5, epoch, shuffleBlock).subarray(0, 96)));
      }
    });
  }

  it('shards of a step concatenate to the whole step, each at its own epoch position', () => {
    const plan = new RunPlan(planConfig({ shuffleBlock: 16, model: dannModel }), 103);
    for (const step of [0, 5, 11, 12, 35]) {
      const whole = plan.examples(step);
      for (const m of [1, 2, 4, 8]) {
        const shards = Array.from({ length: 8 / m }, (_, k) => plan.examples(step, k * m, m));
        shards.forEach((s, k) => {
          expect(s.epoch).toBe(whole.epoch);
          expect(s.firstPosition).toBe(whole.firstPosition + k * m);
          expect(s.indices.length).toBe(m);
          expect(s.dann!.lambda).toBe(whole.dann!.lambda);
        });
        expect(concat(shards.map((s) => s.indices))).toEqual(Array.from(whole.indices));
        expect(concat(shards.map((s) => s.dann!.indices))).toEqual(Array.from(whole.dann!.indices));
      }
    }
  });

  it('starts epoch 1 at position 0 on step stepsPerEpoch, with a new order', () => {
    const plan = new RunPlan(planConfig(), 103);
    const last = plan.examples(11);
    expect(last.epoch).toBe(0);
    expect(last.firstPosition).toBe(88);
    expect(Array.from(last.indices)).toEqual(Array.from(epochOrder(103, 5, 0).subarray(88, 96)));
    const next = plan.examples(12);
    expect(next.epoch).toBe(1);
    expect(next.firstPosition).toBe(0);
    expect(Array.from(next.indices)).toEqual(Array.from(epochOrder(103, 5, 1).subarray(0, 8)));
    expect(Array.from(next.indices)).not.toEqual(Array.from(plan.examples(0).indices));
  });

  it('answers the same whatever order steps are asked in (its per-epoch cache)', () => {
    const plan = new RunPlan(planConfig({ model: dannModel, shuffleBlock: 16 }), 103);
    const fresh = (step: number) => {
      const ex = new RunPlan(planConfig({ model: dannModel, shuffleBlock: 16 }), 103).examples(step);
      return { ...ex, indices: Array.from(ex.indices), dann: { ...ex.dann!, indices: Array.from(ex.dann!.indices) } };
    };
    for (const step of [30, 0, 13, 1, 35, 12, 0]) {
      const ex = plan.examples(step);
      expect({ ...ex, indices: Array.from(ex.indices), dann: { ...ex.dann!, indices: Array.from(ex.dann!.indices) } }).toEqual(fresh(step));
    }
  });

  it('gives DANN target examples from a different order at the same positions, and the lambda schedule', () => {
    const plan = new RunPlan(planConfig({ model: dannModel, shuffleBlock: 16 }), 103);
    for (const step of [0, 1, 11, 12, 20, 35]) {
      const ex = plan.examples(step);
      const target = epochOrder(103, 6, ex.epoch, 16); // seed + 1
      expect(Array.from(ex.dann!.indices)).toEqual(Array.from(target.subarray(ex.firstPosition, ex.firstPosition + 8)));
      expect(ex.dann!.lambda).toBe(dannLambda(step / 36));
    }
    // Not the source order (a different permutation, not the same one read elsewhere).
    expect(Array.from(epochOrder(103, 6, 0, 16))).not.toEqual(Array.from(epochOrder(103, 5, 0, 16)));
    expect(plan.examples(0).dann!.lambda).toBe(0);
    expect(plan.examples(35).dann!.lambda).toBeCloseTo(dannLambda(35 / 36), 15);
    expect(plan.examples(35).dann!.lambda).toBeGreaterThan(0.99);
  });

  it('rejects steps outside the run and ranges outside the batch', () => {
    const plan = new RunPlan(planConfig(), 103);
    expect(() => plan.examples(-1)).toThrow('step -1 is outside 0..35');
    expect(() => plan.examples(36)).toThrow('step 36 is outside 0..35');
    expect(() => plan.examples(1.5)).toThrow('step 1.5 is outside 0..35');
    expect(() => plan.examples(0, -1, 2)).toThrow('outside the batch of 8');
    expect(() => plan.examples(0, 6, 3)).toThrow('examples 6..9 are outside the batch of 8');
    expect(() => plan.examples(0, 8)).toThrow('outside the batch of 8');
    expect(() => plan.examples(0, 0, 0)).toThrow('outside the batch of 8');
    expect(plan.examples(35, 7, 1).indices.length).toBe(1);
  });
});

// ---------- the feeder: a batch split into shards is fed (and augmented) exactly as the whole ----------

describe('BatchFeeder shard equivalence', () => {
  const data: Cifar10 = assembleCifar10(fixtureFiles(20), 'fixture'); // 100 train images
  const feedCopy = (feeds: Readonly<Record<string, Feed>>) =>
    Object.fromEntries(Object.entries(feeds).map(([name, f]) => [name, { data: f.data.slice(), dims: [...f.dims] }])) as Record<string, Feed>;
  const rows = (f: Feed, first: number, count: number) => {
    const per = f.data.length / f.dims[0];
    return f.data.slice(first * per, (first + count) * per);
  };

  for (const model of [DEFAULT_MODEL_CONFIG, { ...DEFAULT_MODEL_CONFIG, head: 'concat', dann: true }]) {
    it(`a batch of 4 equals its two shards of 2, image for image (${model.head}${model.dann ? ', DANN' : ''})`, () => {
      const config = { ...SEED_TRAIN_CONFIG, model, normalization: 'cifar' as const, seed: 9, augment: true };
      const captions = placeholderCaptions(model.classes, model.captionsPerClass, TEXT_DIM);
      const whole = new BatchFeeder(buildTrainingGraph(model, 4), config, captions, 4);
      const half = new BatchFeeder(buildTrainingGraph(model, 2), config, captions, 2);
      const plan = new RunPlan({ ...config, batch: 4, epochs: 2, shuffleBlock: 16 }, data.train.count);
      const dannOf = (ex: ReturnType<RunPlan['examples']>) => (ex.dann ? { split: data.train, ...ex.dann } : undefined);

      for (const step of [0, 7, 24, 49]) {
        const ex = plan.examples(step);
        const full = feedCopy(whole.feeds({ split: data.train, ...ex }, true, dannOf(ex)));
        const names = Object.keys(full).sort();
        expect(names).toEqual(model.dann ? ['caption', 'image', 'label', 'lambda', 'target_image'] : ['class_text', 'image', 'label']);
        for (const k of [0, 1]) {
          const sx = plan.examples(step, 2 * k, 2);
          const shard = feedCopy(half.feeds({ split: data.train, ...sx }, true, dannOf(sx)));
          expect(Object.keys(shard).sort()).toEqual(names);
          for (const name of ['image', 'label', 'caption', 'target_image']) {
            if (!(name in full)) continue;
            expect(shard[name].dims).toEqual([2, ...full[name].dims.slice(1)]);
            expect(shard[name].data).toEqual(rows(full[name], 2 * k, 2));
          }
          for (const name of ['class_text', 'lambda']) if (name in full) expect(shard[name]).toEqual(full[name]);
        }
      }
    });
  }

  it('augments each image with the stream of its epoch position (exact pixels)', () => {
    const config = { ...SEED_TRAIN_CONFIG, normalization: 'cifar' as const, seed: 9 };
    const feeder = new BatchFeeder(buildTrainingGraph(DEFAULT_MODEL_CONFIG, 4), config, placeholderCaptions(10, 4, TEXT_DIM), 4);
    const indices = [17, 3, 99, 42];
    const image = feeder.feeds({ split: data.train, indices, epoch: 3, firstPosition: 40 }, true).image.data.slice();
    for (let b = 0; b < 4; b++) {
      const expected = new Float32Array(IMAGE_BYTES);
      fillBatch(data.train, [indices[b]], expected, new BigInt64Array(1), CIFAR10_NORMALIZATION, { rng: () => exampleRng(9, 3, 40 + b), padCrop: 4, flip: true });
      expect(image.subarray(b * IMAGE_BYTES, (b + 1) * IMAGE_BYTES)).toEqual(expected);
    }
  });

  it('the augmentation really depends on the position key (so the equivalence above is not vacuous)', () => {
    const config = { ...SEED_TRAIN_CONFIG, normalization: 'cifar' as const, seed: 9 };
    const feeder = new BatchFeeder(buildTrainingGraph(DEFAULT_MODEL_CONFIG, 2), config, placeholderCaptions(10, 4, TEXT_DIM), 2);
    const indices = [5, 6];
    const image = (augment: boolean, epoch: number, firstPosition: number) =>
      feeder.feeds({ split: data.train, indices, epoch, firstPosition }, augment).image.data.join(',');
    const plain = image(false, 0, 0);
    const byPosition = Array.from({ length: 8 }, (_, i) => image(true, 0, 2 * i));
    const byEpoch = Array.from({ length: 8 }, (_, e) => image(true, e, 0));
    expect(byPosition.some((im) => im !== plain)).toBe(true);
    expect(new Set(byPosition).size).toBeGreaterThan(1);
    expect(new Set(byEpoch).size).toBeGreaterThan(1);
  });

  it("the DANN target is the target split's images at the DANN indices, augmented with its own stream", () => {
    const model = { ...DEFAULT_MODEL_CONFIG, dann: true };
    const config = { ...SEED_TRAIN_CONFIG, model, normalization: 'seed' as const, seed: 4 };
    const feeder = new BatchFeeder(buildTrainingGraph(model, 2), config, placeholderCaptions(10, 4, TEXT_DIM), 2);
    // A target domain of its own: the train images inverted (the feeder reads the split it is given).
    const shifted = { ...data.train, images: data.train.images.map((v) => 255 - v) };
    const feeds = feeder.feeds({ split: data.train, indices: [1, 2], epoch: 0, firstPosition: 6 }, true, { split: shifted, indices: [3, 4], lambda: 0.25 });
    const target = feeds.target_image.data as Float32Array;
    // Exactly: the target images augmented with the target stream (seed + 1 at the same positions).
    const expected = new Float32Array(2 * IMAGE_BYTES);
    fillBatch(shifted, [3, 4], expected, new BigInt64Array(2), SEED_NORMALIZATION, { rng: (b) => exampleRng(5, 0, 6 + b), padCrop: 4, flip: true });
    expect(target).toEqual(expected);
    expect(Array.from(feeds.lambda.data as Float32Array)).toEqual([0.25]);
    expect(feeds.lambda.dims).toEqual([]);
  });
});
