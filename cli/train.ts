// `edgetrain train`: the single-process trainer on CIFAR-10 (onnxruntime-web WASM in Node by default).
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_AUTODIFF_OPTIONS, type AutodiffOptions } from '../shared/autodiff/rule';
import { inferenceModelBytes } from '../shared/training/export';
import { decodeCheckpoint, encodeCheckpoint, type EpochReport, type TrainerState } from '../shared/training/checkpoint';
import type { TrainConfig } from '../shared/training/config';
import { NonFiniteLossError, train } from '../shared/training/trainer';
import { loadOrt } from '../workers/ort/node';
import { choiceFlag, numberFlag, parseFlags, UsageError } from './args';
import { CONFIG_FLAGS, CONFIG_USAGE, trainConfigFromValues } from './config-flags';
import { loadCifar10 } from './dataset';

const FLAGS = {
  ...CONFIG_FLAGS,
  runtime: { type: 'string' },
  threads: { type: 'string' },
  'conv-weight-grad': { type: 'string' },
  'conv-input-grad': { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  quiet: { type: 'boolean' },
} as const;

export const TRAIN_USAGE = `edgetrain train [options]   the single-process trainer (the reference the cluster must equal)
${CONFIG_USAGE}
  --runtime web|native (web = onnxruntime-web WASM)  --threads N (1)
  --conv-weight-grad conv|im2col (conv)  --conv-input-grad convTranspose|conv (convTranspose)
  --data PATH            CIFAR-10 .tar.gz or folder (default $EDGETRAIN_CIFAR10, ../shared/data, cache, download)
  --out DIR              run folder (default .edgetrain/runs/<preset>-<head>)
  --resume               continue from DIR/checkpoint.bin`;

export function trainConfigFromFlags(argv: string[]): { config: TrainConfig; flags: ReturnType<typeof parseFlags<typeof FLAGS>> } {
  const flags = parseFlags(argv, FLAGS, 'train');
  return { config: trainConfigFromValues(flags), flags };
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export function formatEpoch(r: EpochReport, epochs: number): string {
  return `epoch ${String(r.epoch).padStart(2)}/${epochs}  loss ${r.trainLoss.toFixed(4)}  train ${pct(r.trainAccuracy)}  test loss ${r.testLoss.toFixed(4)}  test ${pct(r.testAccuracy)}  ${r.seconds.toFixed(1)} s  (${r.trainImagesPerSecond.toFixed(0)} img/s)`;
}

async function writeAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  await writeFile(`${file}.tmp`, bytes);
  await rename(`${file}.tmp`, file);
}

export async function trainCommand(argv: string[], log: (s: string) => void = console.log): Promise<TrainerState> {
  const { config, flags } = trainConfigFromFlags(argv);
  const runtime = choiceFlag('runtime', flags.runtime, ['web', 'native'] as const, 'web');
  const threads = numberFlag('threads', flags.threads, 1);
  const autodiff: AutodiffOptions = {
    convWeightGrad: choiceFlag('conv-weight-grad', flags['conv-weight-grad'], ['conv', 'im2col'] as const, DEFAULT_AUTODIFF_OPTIONS.convWeightGrad),
    convInputGrad: choiceFlag('conv-input-grad', flags['conv-input-grad'], ['convTranspose', 'conv'] as const, DEFAULT_AUTODIFF_OPTIONS.convInputGrad),
  };
  const outDir = path.resolve(flags.out ?? path.join('.edgetrain', 'runs', `${config.model.preset}-${config.model.head}${config.model.dann ? '-dann' : ''}`));
  const checkpointFile = path.join(outDir, 'checkpoint.bin');
  await mkdir(outDir, { recursive: true });

  let resume: TrainerState | undefined;
  if (flags.resume) {
    if (!existsSync(checkpointFile)) throw new UsageError(`--resume: no checkpoint at ${checkpointFile}`);
    resume = decodeCheckpoint(await readFile(checkpointFile), checkpointFile);
    log(`resuming from ${checkpointFile} after epoch ${resume.epoch}`);
  }
  const data = await loadCifar10({ path: flags.data, log });
  const ort = await loadOrt(runtime, threads);
  log(`training ${config.model.preset}/${config.model.head}${config.model.dann ? '+dann' : ''} for ${config.epochs} epochs, batch ${config.batch}, ${config.optimizer.kind} lr ${config.optimizer.lr}, ${runtime} runtime, ${threads} thread(s)`);
  const progress = !flags.quiet && process.stderr.isTTY;
  try {
    const state = await train({
      ort,
      data,
      config,
      resume: resume ? { ...resume, config } : undefined,
      autodiff,
      onStep: progress
        ? (p) => {
            if (p.stepInEpoch % 20 === 0) process.stderr.write(`\r  epoch ${p.epoch + 1} step ${p.stepInEpoch}/${p.stepsPerEpoch} loss ${p.loss.toFixed(4)}  `);
          }
        : undefined,
      onEpoch: async (report, s) => {
        if (progress) process.stderr.write('\r\x1b[K');
        log(formatEpoch(report, config.epochs));
        await writeAtomic(checkpointFile, encodeCheckpoint(s));
        await appendFile(path.join(outDir, 'metrics.jsonl'), `${JSON.stringify(report)}\n`);
      },
    });
    const modelFile = path.join(outDir, 'model.onnx');
    await writeAtomic(modelFile, inferenceModelBytes(config.model, config.normalization, state.params, state.buffers));
    const last = state.history[state.history.length - 1];
    log(`final test accuracy ${last ? pct(last.testAccuracy) : 'n/a'}; checkpoint ${checkpointFile}; inference model ${modelFile}`);
    return state;
  } catch (e) {
    if (e instanceof NonFiniteLossError) {
      const kept = existsSync(checkpointFile) ? `the last good checkpoint is kept at ${checkpointFile}` : 'no epoch had completed, so there is no checkpoint';
      throw new UsageError(`${e.message}; ${kept}`);
    }
    throw e;
  }
}
