import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assembleCifar10, type Cifar10 } from '../../shared/data/cifar';
import { DEFAULT_MODEL_CONFIG } from '../../shared/models/presets';
import { decodeCheckpoint, encodeCheckpoint, type EpochReport } from '../../shared/training/checkpoint';
import { SEED_TRAIN_CONFIG, trainConfigErrors, type TrainConfig } from '../../shared/training/config';
import { dannLambda } from '../../shared/training/feeder';
import { Evaluator, NonFiniteLossError, train } from '../../shared/training/trainer';
import { placeholderCaptions } from '../../shared/training/caption-feed';
import { buildEvalGraph } from '../../shared/models/compile';
import { TEXT_DIM } from '../../shared/models/heads';
import { initBuffers } from '../../shared/models/params';
import type { Output } from '../../cli/command';
import { runTrain, trainProgressLine } from '../../cli/train';
import { fixtureFiles, writeFolder } from '../support/cifar-fixture';
import { runOnce, webOrt } from '../support/ort';

const fixture: Cifar10 = assembleCifar10(fixtureFiles(16), 'fixture');

const small: TrainConfig = {
  ...SEED_TRAIN_CONFIG,
  model: { ...DEFAULT_MODEL_CONFIG, head: 'linear' },
  optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
  epochs: 2,
  batch: 16,
  evalBatch: 16,
  augment: true,
};

const run = async (config: TrainConfig, resume?: Awaited<ReturnType<typeof train>>) =>
  train({ ort: await webOrt(), data: fixture, config, resume });

describe('single-process trainer', () => {
  it('resuming from a checkpoint gives bit-identical parameters to training straight through', async () => {
    const straight = await run(small);
    const first = await run({ ...small, epochs: 1 });
    const restored = decodeCheckpoint(encodeCheckpoint(first));
    const resumed = await run(small, restored);
    expect(resumed.epoch).toBe(2);
    expect(resumed.step).toBe(straight.step);
    expect(Buffer.from(resumed.params.buffer).equals(Buffer.from(straight.params.buffer))).toBe(true);
    expect(resumed.history.map((h) => h.testAccuracy)).toEqual(straight.history.map((h) => h.testAccuracy));
  });

  it('resumes from a mid-epoch checkpoint under a cosine schedule with warm-up (SGD, Nesterov momentum) bit-identically', async () => {
    const cosine: TrainConfig = { ...small, schedule: { decay: 'cosine', warmupSteps: 2, totalSteps: 0, minLrFactor: 0 } };
    const ort = await webOrt();
    const straight = await train({ ort, data: fixture, config: cosine });
    const midEpoch = straight.step / cosine.epochs + 2; // epoch 2's third step
    const stopped = await train({ ort, data: fixture, config: cosine, untilStep: midEpoch });
    expect([stopped.step, stopped.epoch, stopped.history.length]).toEqual([midEpoch, 1, 1]);
    const resumed = await train({ ort, data: fixture, config: cosine, resume: decodeCheckpoint(encodeCheckpoint(stopped)) });
    expect(resumed.step).toBe(straight.step);
    expect(Buffer.from(resumed.params.buffer).equals(Buffer.from(straight.params.buffer))).toBe(true);
    expect(resumed.optimizer.slots.map((x) => Buffer.from(x.buffer))).toEqual(straight.optimizer.slots.map((x) => Buffer.from(x.buffer)));
    expect(resumed.history.at(-1)!.testAccuracy).toBe(straight.history.at(-1)!.testAccuracy);
  });

  it('computes a step in ghost batches when asked, and refuses one that does not divide the batch', async () => {
    const ort = await webOrt();
    const whole = await train({ ort, data: fixture, config: { ...small, epochs: 1 } });
    const ghost = await train({ ort, data: fixture, config: { ...small, epochs: 1 }, ghostBatch: 8 });
    // seed-cnn has no batch norm: two slices of 8 are the same mathematics as one of 16, up to rounding.
    expect(Buffer.from(ghost.params.buffer).equals(Buffer.from(whole.params.buffer))).toBe(false);
    let worst = 0;
    for (let i = 0; i < whole.params.length; i++) worst = Math.max(worst, Math.abs(ghost.params[i] - whole.params[i]));
    expect(worst).toBeLessThan(1e-5);
    await expect(train({ ort, data: fixture, config: small, ghostBatch: 6 })).rejects.toThrow(/ghost batch 6 must divide the batch 16/);
  });

  it('keeps batch-norm running statistics and evaluates with them (res-cnn)', async () => {
    const config: TrainConfig = { ...small, model: { ...small.model, preset: 'res-cnn' }, epochs: 1 };
    const state = await run(config);
    expect(state.buffers.length).toBeGreaterThan(0);
    expect(state.buffers.some((v) => v !== 0 && v !== 1)).toBe(true);
    const captions = placeholderCaptions(config.model.classes, config.model.captionsPerClass, TEXT_DIM);
    const evaluator = await Evaluator.create(await webOrt(), config, fixture.test, captions);
    try {
      const trained = await evaluator.evaluate(state.params, state.buffers);
      expect(trained.loss).toBeCloseTo(state.history[0].testLoss, 5);
      const untouched = await evaluator.evaluate(state.params, initBuffers(buildEvalGraph(config.model, 16).buffers));
      expect(untouched.loss).not.toBeCloseTo(trained.loss, 3);
    } finally {
      await evaluator.release();
    }
  });

  it('stops on a non-finite loss without applying that step', async () => {
    const explode: TrainConfig = { ...small, optimizer: { ...small.optimizer, lr: 1e12 } as TrainConfig['optimizer'] };
    await expect(run(explode)).rejects.toBeInstanceOf(NonFiniteLossError);
  });

  it('validates the config field by field', () => {
    const errors = trainConfigErrors({ ...small, batch: 0, normalization: 'imagenet' as 'seed', model: { ...small.model, head: 'mlp' } });
    expect(errors).toEqual(
      expect.arrayContaining([
        'model.head: \'mlp\' is not one of linear, concat, align, attention',
        'batch: 0 is not an integer in [1, 4096]',
        "normalization: 'imagenet' is not one of seed, cifar",
      ]),
    );
  });

  it('ramps the DANN reversal strength from 0 towards 1', () => {
    expect(dannLambda(0)).toBe(0);
    expect(dannLambda(0.5)).toBeCloseTo(0.9866, 4);
    expect(dannLambda(1)).toBeGreaterThan(0.999);
  });
});

describe('edgetrain train (CLI)', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'edgetrain-cli-'));
  writeFolder(dataDir, fixtureFiles(16));
  const quiet: Output = { line: () => {}, write: () => {}, note: () => {}, tty: false };
  const base = ['--data', dataDir, '--batch', '16', '--eval-batch', '16', '--quiet'];

  it('writes a checkpoint, metrics and an inference model; a NaN run keeps the last good checkpoint', async () => {
    const out = path.join(dataDir, 'run');
    await runTrain([...base, '--epochs', '1', '--out', out], quiet);
    const checkpoint = readFileSync(path.join(out, 'checkpoint.bin'));
    expect(decodeCheckpoint(checkpoint).epoch).toBe(1);
    // The inference model carries the weights, the align head's class captions and the normalisation: raw pixels in, probabilities out.
    const inference = await runOnce(readFileSync(path.join(out, 'model.onnx')), { pixels: { data: new Float32Array(3 * 32 * 32).fill(128), dims: [1, 3, 32, 32] } });
    const probabilities = inference.probabilities as Float32Array;
    expect(probabilities).toHaveLength(10);
    expect(probabilities.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);

    const nan = runTrain([...base, '--epochs', '2', '--out', out, '--lr', '1e12', '--resume'], quiet);
    await expect(nan).rejects.toThrow(/loss became (NaN|Infinity|-Infinity) at epoch 2.*the last good checkpoint is kept at .*checkpoint\.bin/);
    expect(readFileSync(path.join(out, 'checkpoint.bin')).equals(checkpoint)).toBe(true);
  });

  it('--dann --target: trains against the shifted domain, logs target and domain-classifier figures per epoch, and ends with a model', async () => {
    const out = path.join(dataDir, 'dann');
    const lines: string[] = [];
    await runTrain([...base, '--epochs', '2', '--dann', '--target', 'contrast:3', '--out', out], { ...quiet, line: (s) => lines.push(s) });
    expect(lines).toContain('target domain: contrast-3 (seed 0) made from the same CIFAR-10');
    expect(lines.filter((l) => /^epoch  \d\/2 .* test \d+\.\d\d%  target \d+\.\d\d%  domain loss \d\.\d{4} acc \d+\.\d\d%/.test(l))).toHaveLength(2);
    const metrics = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as EpochReport);
    expect(metrics.map((m) => [typeof m.targetAccuracy, typeof m.domainLoss, typeof m.domainAccuracy])).toEqual(Array(2).fill(['number', 'number', 'number']));
    const inference = await runOnce(readFileSync(path.join(out, 'model.onnx')), { pixels: { data: new Float32Array(3 * 32 * 32).fill(128), dims: [1, 3, 32, 32] } });
    expect(inference.probabilities).toHaveLength(10);

    await expect(runTrain([...base, '--dann', '--out', out], quiet)).rejects.toThrow('--dann needs --target FAMILY:SEVERITY');
    await expect(runTrain([...base, '--target', 'fog:7', '--out', out], quiet)).rejects.toThrow(/--target: severity '7' in 'fog:7' is not one of 1, 2, 3, 4, 5/);
  });

  it('draws a \\r-rewritten progress line within an epoch on a terminal, and none off a terminal', async () => {
    const capture = (tty: boolean) => {
      const text = { lines: [] as string[], written: '' };
      const out: Output = { line: (s) => text.lines.push(s), write: (s) => (text.written += s), note: () => {}, tty };
      return { out, text };
    };
    const argv = ['--data', dataDir, '--batch', '16', '--eval-batch', '16', '--epochs', '1', '--out', path.join(dataDir, 'progress')];
    const terminal = capture(true);
    await runTrain(argv, terminal.out);
    const drawn = terminal.text.written.split('\r\x1b[K').filter(Boolean);
    expect(drawn.length).toBeGreaterThanOrEqual(1);
    // The last step is always drawn; the line is cleared before the epoch's line is printed.
    expect(drawn.at(-1)).toMatch(/^epoch 1\/1 · step 5\/5 · loss \d+\.\d{4} · \d+ img\/s · ETA 0s$/);
    expect(terminal.text.written.endsWith('\r\x1b[K')).toBe(true);
    expect(terminal.text.lines.some((l) => l.startsWith('epoch  1/1'))).toBe(true);

    const piped = capture(false);
    await runTrain(argv, piped.out);
    expect(piped.text.written).toBe('');
    expect(piped.text.lines.filter((l) => /step \d+\/|\r/.test(l))).toEqual([]);
    expect(piped.text.lines.some((l) => l.startsWith('epoch  1/1'))).toBe(true);

    const quietTerminal = capture(true);
    await runTrain([...argv, '--quiet'], quietTerminal.out);
    expect(quietTerminal.text.written).toBe('');
  });

  it('formats the progress line with the run ETA from the rate', () => {
    expect(trainProgressLine({ epoch: 0, stepInEpoch: 10, stepsPerEpoch: 100, loss: 2.30258 }, 2, 640, 64)).toBe('epoch 1/2 · step 10/100 · loss 2.3026 · 640 img/s · ETA 19s');
    expect(trainProgressLine({ epoch: 0, stepInEpoch: 1, stepsPerEpoch: 100, loss: 2.3 }, 2, 0, 64)).toMatch(/ETA —$/);
  });

  it('names unknown options, bad values and unknown presets with the valid choices', async () => {
    await expect(runTrain(['--epoch', '3'], quiet)).rejects.toThrow(/Unknown option '--epoch'[\s\S]*valid options: --preset, --head/);
    await expect(runTrain(['--optimizer', 'rmsprop'], quiet)).rejects.toThrow("--optimizer: 'rmsprop' is not one of sgd, adam, adamw");
    await expect(runTrain([...base, '--preset', 'vgg'], quiet)).rejects.toThrow("model.preset: 'vgg' is not one of seed-cnn, bn-cnn, res-cnn, tiny-cnn");
    await expect(runTrain([...base, '--micro-batch', '6'], quiet)).rejects.toThrow('--micro-batch 6 must divide --batch 16');
  });

  it('names a truncated dataset file and its record', async () => {
    const broken = path.join(dataDir, 'broken');
    const files = fixtureFiles(16);
    files.set('data_batch_3.bin', files.get('data_batch_3.bin')!.subarray(0, 3073 * 5 + 100));
    writeFolder(broken, files);
    await expect(runTrain(['--data', broken, '--quiet'], quiet)).rejects.toThrow(/data_batch_3\.bin: .* \(record 5 is truncated\)/);
  });
});

