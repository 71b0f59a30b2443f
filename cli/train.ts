// `edgetrain train`: the single-process trainer on CIFAR-10 (onnxruntime-web WASM in Node by default).
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_AUTODIFF_OPTIONS, type AutodiffOptions } from '../shared/autodiff/rule';
import { clusterConfigFields } from '../shared/protocol';
import { inferenceModelBytes } from '../shared/training/export';
import { decodeCheckpoint, encodeCheckpoint, type EpochReport, type TrainerState } from '../shared/training/checkpoint';
import type { TrainConfig } from '../shared/training/config';
import { NonFiniteLossError, train, type StepProgress } from '../shared/training/trainer';
import { loadOrt } from '../workers/ort/node';
import { choiceFlag, fieldFlag, intFlag, numberFlag, parseFlags, UsageError } from './args';
import { processOutput, type Command, type Output } from './command';
import { CONFIG_FLAGS, CONFIG_USAGE, trainConfigFromValues } from './config-flags';
import { COMMUNICATION_FLAGS, COMMUNICATION_USAGE, communicationFromValues, withDilocoOptimizer } from './run-flags';
import { communicationOf } from '../shared/training/communication';
import { duration } from './display';
import { loadCifar10 } from './dataset';
import { CORRUPTION_FAMILIES, corruptCifar10, shiftName, type DomainShift } from '../shared/data/corruptions';
import { shiftFromFlags } from './prepare';
import { CliError, EXIT } from './errors';

const FLAGS = {
  ...CONFIG_FLAGS,
  runtime: { type: 'string' },
  threads: { type: 'string' },
  'conv-weight-grad': { type: 'string' },
  'conv-input-grad': { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  'micro-batch': { type: 'string' },
  quiet: { type: 'boolean' },
  workers: { type: 'string' },
  'replace-worker-every': { type: 'string' },
  target: { type: 'string' },
  'target-seed': { type: 'string' },
  ...COMMUNICATION_FLAGS,
} as const;

export const TRAIN_USAGE = `edgetrain train [options]   the single-process trainer (the reference the cluster must equal)
${CONFIG_USAGE}
  --runtime web|native (web = onnxruntime-web WASM)  --threads N (1)
  --conv-weight-grad conv|im2col (conv)  --conv-input-grad convTranspose|conv (convTranspose)
  --data PATH            CIFAR-10 .tar.gz or folder (default $EDGETRAIN_CIFAR10, ../shared/data, cache, download)
  --out DIR              run folder (default .edgetrain/runs/<preset>-<head>)
  --resume               continue from DIR/checkpoint.bin (an epoch's end, or mid-epoch: a cluster snapshot)
  --micro-batch N        run each step in shards of N examples as a cluster run with --micro-batch N does
                         (batch-norm statistics per shard): reproduces such a run, resumed from its snapshot
  --quiet                no progress line (shown only when stdout is a terminal)
  --target FAMILY:SEVERITY  a shifted target domain made from the same CIFAR-10 (${CORRUPTION_FAMILIES.join(', ')};
                         severity 1–5): its test split is evaluated every epoch, and --dann aligns to its
                         unlabelled train images (required with --dann)   --target-seed N (0)
  Simulating a cluster's communication exactly (shards of --micro-batch; bytes per epoch reported):
${COMMUNICATION_USAGE}
  --workers N            workers the shards are spread over (shard s → worker s mod N; default one per shard)
  --replace-worker-every N  churn: every N answers a worker is replaced, losing its error-feedback residual`;

export function trainConfigFromFlags(argv: string[]): { config: TrainConfig; flags: ReturnType<typeof parseFlags<typeof FLAGS>> } {
  const flags = parseFlags(argv, FLAGS, 'train');
  return { config: trainConfigFromValues(withDilocoOptimizer(flags)), flags };
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

export function formatEpoch(r: EpochReport, epochs: number): string {
  const churn = r.workersReplaced === undefined ? '' : `, ${r.workersReplaced} workers replaced (residual lost: ${(r.lostResidualRatio ?? 0).toFixed(2)}× an answer)`;
  const traffic = r.upBytes === undefined ? '' : `  sent ${mb(r.upBytes)} MB, fetched ${mb(r.downBytes ?? 0)} MB${churn}`;
  const target = r.targetAccuracy === undefined ? '' : `  target ${pct(r.targetAccuracy)}${r.adabnAccuracy === undefined ? '' : ` (AdaBN ${pct(r.adabnAccuracy)})`}`;
  const domain = r.domainLoss === undefined ? '' : `  domain loss ${r.domainLoss.toFixed(4)} acc ${pct(r.domainAccuracy ?? 0)}`;
  return `epoch ${String(r.epoch).padStart(2)}/${epochs}  loss ${r.trainLoss.toFixed(4)}  train ${pct(r.trainAccuracy)}  test loss ${r.testLoss.toFixed(4)}  test ${pct(r.testAccuracy)}${target}${domain}  ${r.seconds.toFixed(1)} s  (${r.trainImagesPerSecond.toFixed(0)} img/s)${traffic}`;
}

/** The in-epoch progress line: step, loss, images/s over this epoch so far, the run's ETA (training steps only). */
export function trainProgressLine(p: Pick<StepProgress, 'epoch' | 'stepInEpoch' | 'stepsPerEpoch' | 'loss'>, epochs: number, imagesPerSecond: number, batch: number): string {
  const left = (epochs - p.epoch - 1) * p.stepsPerEpoch + (p.stepsPerEpoch - p.stepInEpoch);
  const eta = imagesPerSecond > 0 ? (left * batch) / imagesPerSecond : null;
  return `epoch ${p.epoch + 1}/${epochs} · step ${p.stepInEpoch}/${p.stepsPerEpoch} · loss ${p.loss.toFixed(4)} · ${imagesPerSecond.toFixed(0)} img/s · ETA ${duration(eta)}`;
}

/** Rewrites one terminal line per step (at most every 100 ms); `clear` before printing a full line. */
function progressDisplay(out: Output, epochs: number, batch: number): { step: (p: StepProgress) => void; clear: () => void } {
  let epochStart = { epoch: -1, at: 0, step: 0 };
  let lastDrawn = 0;
  let shown = false;
  return {
    step: (p) => {
      const now = performance.now();
      // Timed from the first step this call ran in the epoch (a resumed epoch starts mid-way).
      if (p.epoch !== epochStart.epoch) epochStart = { epoch: p.epoch, at: now, step: p.stepInEpoch - 1 };
      if (now - lastDrawn < 100 && p.stepInEpoch < p.stepsPerEpoch) return;
      lastDrawn = now;
      const seconds = (now - epochStart.at) / 1000;
      // The first step's time includes graph warm-up; it still gives a rate.
      const rate = seconds > 0 ? ((p.stepInEpoch - epochStart.step) * batch) / seconds : 0;
      out.write(`\r\x1b[K${trainProgressLine(p, epochs, rate, batch)}`);
      shown = true;
    },
    clear: () => {
      if (shown) out.write('\r\x1b[K');
      shown = false;
    },
  };
}

async function writeAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  await writeFile(`${file}.tmp`, bytes);
  await rename(`${file}.tmp`, file);
}

export async function runTrain(argv: string[], out: Output = processOutput()): Promise<TrainerState> {
  const log = out.line;
  const { config, flags } = trainConfigFromFlags(argv);
  const microBatch = fieldFlag('micro-batch', flags['micro-batch'], config.batch, clusterConfigFields.shape.microBatch);
  if (config.batch % microBatch !== 0) throw new UsageError(`--micro-batch ${microBatch} must divide --batch ${config.batch}`);
  const runtime = choiceFlag('runtime', flags.runtime, ['web', 'native'] as const, 'web');
  const threads = numberFlag('threads', flags.threads, 1);
  const autodiff: AutodiffOptions = {
    convWeightGrad: choiceFlag('conv-weight-grad', flags['conv-weight-grad'], ['conv', 'im2col'] as const, DEFAULT_AUTODIFF_OPTIONS.convWeightGrad),
    convInputGrad: choiceFlag('conv-input-grad', flags['conv-input-grad'], ['convTranspose', 'conv'] as const, DEFAULT_AUTODIFF_OPTIONS.convInputGrad),
  };
  const given = communicationFromValues(flags);
  const workers = flags.workers === undefined ? undefined : fieldFlag('workers', flags.workers, 1, clusterConfigFields.shape.workers);
  const replaceWorkerEvery = flags['replace-worker-every'] === undefined ? undefined : intFlag('replace-worker-every', flags['replace-worker-every'], 0, 1);
  const communication = Object.keys(given).length || workers ? { ...communicationOf(given), workers, replaceWorkerEvery } : undefined;
  const outDir = path.resolve(flags.out ?? path.join('.edgetrain', 'runs', `${config.model.preset}-${config.model.head}${config.model.dann ? '-dann' : ''}`));
  const checkpointFile = path.join(outDir, 'checkpoint.bin');
  await mkdir(outDir, { recursive: true });

  let resume: TrainerState | undefined;
  if (flags.resume) {
    if (!existsSync(checkpointFile)) throw new UsageError(`--resume: no checkpoint at ${checkpointFile}`);
    try {
      resume = decodeCheckpoint(await readFile(checkpointFile), checkpointFile);
    } catch (e) {
      throw new CliError(`--resume: ${(e as Error).message}; train without --resume to start over (its first epoch replaces the file)`, EXIT.failed);
    }
    log(`resuming from ${checkpointFile} after epoch ${resume.epoch}`);
  }
  const shift = targetShift(flags.target, flags['target-seed'], config.model.dann);
  const data = await loadCifar10({ path: flags.data, log });
  const target = shift && corruptCifar10(data, shift.shift, shift.seed);
  if (shift) log(`target domain: ${shiftName(shift.shift)} (seed ${shift.seed}) made from the same CIFAR-10`);
  const ort = await loadOrt(runtime, threads);
  log(`training ${config.model.preset}/${config.model.head}${config.model.dann ? '+dann' : ''} for ${config.epochs} epochs, batch ${config.batch}, ${config.optimizer.kind} lr ${config.optimizer.lr}, ${runtime} runtime, ${threads} thread(s)`);
  const progress = !flags.quiet && out.tty ? progressDisplay(out, config.epochs, config.batch) : undefined;
  try {
    const state = await train({
      ort,
      data,
      target,
      config,
      resume: resume ? { ...resume, config } : undefined,
      autodiff,
      ghostBatch: microBatch,
      communication,
      onStep: progress?.step,
      onEpoch: async (report, s) => {
        progress?.clear();
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
    progress?.clear();
    if (e instanceof NonFiniteLossError) {
      const kept = existsSync(checkpointFile) ? `the last good checkpoint is kept at ${checkpointFile}` : 'no epoch had completed, so there is no checkpoint';
      throw new UsageError(`${e.message}; ${kept}`);
    }
    throw e;
  }
}

/** --target (and --target-seed); a DANN run must have one. */
export function targetShift(raw: string | undefined, seed: string | undefined, dann: boolean): { shift: DomainShift; seed: number } | undefined {
  const shifted = shiftFromFlags('target', raw, 'target-seed', seed);
  if (dann && !shifted) throw new UsageError(`--dann needs --target FAMILY:SEVERITY: the shifted domain to align to (e.g. --target fog:3)`);
  return shifted;
}

export const trainCommand: Command = { usage: TRAIN_USAGE, run: async (argv, ctx) => (await runTrain(argv, ctx.out), EXIT.ok) };
