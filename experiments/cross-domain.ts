// `npm run experiment -- cross-domain`: does each cross-domain part help on a shifted domain? Trains
// every configuration (source-only, DANN, align, attention, align + DANN; AdaBN re-estimates the
// source-only model's batch norm) with several seeds in one process, evaluates each on the source test
// set and on every shift's test set, and writes one JSON line per (preset, configuration, shift,
// seed), a markdown table (mean ± std over seeds) and an SVG chart. Cells already in the results file
// are not trained again, so an interrupted run continues where it stopped.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { choiceFlag, intFlag, parseFlags, UsageError } from '../cli/args';
import { connect } from '../cli/connect';
import { loadCifar10 } from '../cli/dataset';
import { firstExamples, type Cifar10, type CifarSplit } from '../shared/data/cifar';
import { corruptCifar10, parseDomainShift, shiftName, type DomainShift } from '../shared/data/corruptions';
import { TEXT_DIM } from '../shared/models/heads';
import { PRESET_NAMES, type ModelConfig } from '../shared/models/presets';
import { mean, std } from '../shared/stats';
import { captionsForModel } from '../shared/text/caption-store';
import { adaptBatchNorm } from '../shared/training/adabn';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../shared/training/config';
import { Evaluator, train } from '../shared/training/trainer';
import { placeholderCaptions } from '../shared/training/caption-feed';
import { loadOrt, type OrtRuntime } from '../workers/ort/node';
import { groupedBarChart } from './chart';

/** A row of the table: a head, with or without DANN; AdaBN is the source-only model re-normalised. */
interface Configuration {
  readonly name: string;
  readonly head: ModelConfig['head'];
  readonly dann: boolean;
}
const TRAINED: readonly Configuration[] = [
  { name: 'source-only', head: 'linear', dann: false },
  { name: 'DANN', head: 'linear', dann: true },
  { name: 'align', head: 'align', dann: false },
  { name: 'attention', head: 'attention', dann: false },
  { name: 'align + DANN', head: 'align', dann: true },
];
const ADABN = 'AdaBN';
const ROWS = ['source-only', ADABN, 'DANN', 'align', 'attention', 'align + DANN'];

/** One cell of one seed: what the results file holds per line. */
export interface CellResult {
  readonly preset: string;
  readonly configuration: string;
  readonly shift: string;
  readonly seed: number;
  readonly sourceAccuracy: number;
  readonly targetAccuracy: number;
  readonly runtime: OrtRuntime;
  readonly epochs: number;
  readonly trainLimit: number;
  readonly captions: string;
  readonly seconds: number;
}

export interface CrossDomainOptions {
  readonly presets: readonly string[];
  readonly shifts: readonly DomainShift[];
  readonly seeds: readonly number[];
  readonly epochs: number;
  readonly trainLimit: number;
  /** Test images per split evaluated (0: all 10,000). */
  readonly evalLimit: number;
  readonly runtime: OrtRuntime;
  readonly out: string;
  readonly data?: string;
  readonly captions?: string;
  readonly state?: string;
}

const FLAGS = {
  quick: { type: 'boolean' },
  presets: { type: 'string' },
  shifts: { type: 'string' },
  seeds: { type: 'string' },
  epochs: { type: 'string' },
  'train-limit': { type: 'string' },
  'eval-limit': { type: 'string' },
  runtime: { type: 'string' },
  out: { type: 'string' },
  data: { type: 'string' },
  captions: { type: 'string' },
  state: { type: 'string' },
  'table-only': { type: 'boolean' },
} as const;

export const CROSS_DOMAIN_USAGE = `npm run experiment -- cross-domain [options]
  --quick                 a smoke run: 2 seeds, 2 epochs on 1,000 images, 500 test images per split
  --presets LIST          (seed-cnn,res-cnn)   --shifts LIST (gaussian_noise:5,contrast:5), FAMILY:SEVERITY each
  --seeds LIST            (1,2,3; processes running other seeds or presets may share one --out)
  --epochs N (4)   --train-limit N (3000)   --eval-limit N (2000; 0: all)
  --runtime native|web    (native)  --data PATH (CIFAR-10; default as edgetrain train)
  --captions HASH         class captions stored by \`edgetrain captions\` in the local cluster (--state DIR)
  --out DIR               (docs/data/cross-domain) results.jsonl, table.md, chart.svg
  --table-only            only rebuild table.md and chart.svg from results.jsonl`;

const list = (raw: string | undefined, fallback: string) => (raw ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);

export function crossDomainOptions(argv: string[]): CrossDomainOptions & { tableOnly: boolean } {
  const flags = parseFlags(argv, FLAGS, 'experiment cross-domain');
  const quick = Boolean(flags.quick);
  const presets = list(flags.presets, 'seed-cnn,res-cnn');
  for (const p of presets) if (!PRESET_NAMES.includes(p as never)) throw new UsageError(`--presets: '${p}' is not one of ${PRESET_NAMES.join(', ')}`);
  const shifts = list(flags.shifts, 'gaussian_noise:5,contrast:5').map((s) => {
    try {
      return parseDomainShift(s);
    } catch (e) {
      throw new UsageError(`--shifts: ${(e as Error).message}`);
    }
  });
  const seeds = list(flags.seeds, quick ? '1,2' : '1,2,3').map((s) => intFlag('seeds', s, 1, 0));
  return {
    presets,
    shifts,
    seeds,
    epochs: intFlag('epochs', flags.epochs, quick ? 2 : 4, 1),
    trainLimit: intFlag('train-limit', flags['train-limit'], quick ? 1000 : 3000, 0),
    evalLimit: intFlag('eval-limit', flags['eval-limit'], quick ? 500 : 2000, 0),
    runtime: choiceFlag('runtime', flags.runtime, ['native', 'web'] as const, 'native'),
    out: path.resolve(flags.out ?? path.join('docs', 'data', quick ? 'cross-domain-quick' : 'cross-domain')),
    data: flags.data,
    captions: flags.captions,
    state: flags.state,
    tableOnly: Boolean(flags['table-only']),
  };
}

/** The recipe every cell trains with (the README's 10-epoch recipe, shortened). */
function trainConfig(o: CrossDomainOptions, preset: string, c: Configuration, seed: number): TrainConfig {
  return {
    ...SEED_TRAIN_CONFIG,
    model: { ...SEED_TRAIN_CONFIG.model, preset: preset as ModelConfig['preset'], head: c.head, dann: c.dann },
    optimizer: { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    schedule: { ...SEED_TRAIN_CONFIG.schedule, decay: 'cosine' },
    epochs: o.epochs,
    batch: 128,
    augment: true,
    normalization: 'cifar',
    trainLimit: o.trainLimit,
    seed,
  };
}

/** The first `limit` test images (0: all). */
const testSubset = (split: CifarSplit, limit: number) => (limit ? firstExamples(split, limit) : split);

const cellKey = (r: Pick<CellResult, 'preset' | 'configuration' | 'shift' | 'seed'>) => `${r.preset}|${r.configuration}|${r.shift}|${r.seed}`;

/** The results so far, the first line of each cell (runs side by side for other seeds may repeat one). */
async function readResults(file: string): Promise<CellResult[]> {
  if (!existsSync(file)) return [];
  const cells = new Map<string, CellResult>();
  for (const line of (await readFile(file, 'utf8')).split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as CellResult;
    if (!cells.has(cellKey(r))) cells.set(cellKey(r), r);
  }
  return [...cells.values()];
}

export async function runCrossDomain(o: CrossDomainOptions, log: (s: string) => void): Promise<CellResult[]> {
  await mkdir(o.out, { recursive: true });
  const resultsFile = path.join(o.out, 'results.jsonl');
  const done = new Set((await readResults(resultsFile)).map(cellKey));
  const captionSet = o.captions ? await storedCaptions(o.captions, o.state) : undefined;
  const source = await loadCifar10({ path: o.data, log });
  const data: Cifar10 = { ...source, test: testSubset(source.test, o.evalLimit) };
  const targets = o.shifts.map((shift) => {
    const t = corruptCifar10(source, shift);
    return { shift, name: shiftName(shift), data: { ...t, test: testSubset(t.test, o.evalLimit) } };
  });
  const ort = await loadOrt(o.runtime, 1);
  const captionsFor = (model: ModelConfig) => (captionSet ? captionsForModel(captionSet, model, TEXT_DIM, o.captions!) : placeholderCaptions(model.classes, model.captionsPerClass, TEXT_DIM));
  const record = async (r: Omit<CellResult, 'runtime' | 'epochs' | 'trainLimit' | 'captions'>) => {
    const line: CellResult = { ...r, runtime: o.runtime, epochs: o.epochs, trainLimit: o.trainLimit, captions: o.captions ?? 'placeholder' };
    if (done.has(cellKey(line))) return;
    await appendFile(resultsFile, `${JSON.stringify(line)}\n`);
    done.add(cellKey(line));
    log(`${line.preset} ${line.configuration} ${line.shift} seed ${line.seed}: source ${pct(line.sourceAccuracy)}, target ${pct(line.targetAccuracy)} (${line.seconds.toFixed(0)} s)`);
  };

  for (const preset of o.presets) {
    for (const seed of o.seeds) {
      for (const c of TRAINED) {
        const cells = c.dann ? targets.map((t) => [t]) : [targets];
        for (const shifted of cells) {
          // The source-only model's cells include AdaBN's, evaluated from the same model.
          const rows = c.name === 'source-only' ? [c.name, ADABN] : [c.name];
          const pending = shifted.filter((t) => rows.some((configuration) => !done.has(cellKey({ preset, configuration, shift: t.name, seed }))));
          if (!pending.length) continue;
          const config = trainConfig(o, preset, c, seed);
          const captions = captionsFor(config.model);
          const started = performance.now();
          // A DANN cell aligns to its one shift; the others train once and are evaluated on every shift.
          const state = await train({ ort, data, target: c.dann ? shifted[0].data : undefined, config, captions });
          const last = state.history.at(-1)!;
          const seconds = (performance.now() - started) / 1000;
          for (const t of pending) {
            const base = { preset, shift: t.name, seed, sourceAccuracy: last.testAccuracy, seconds };
            if (c.dann) {
              await record({ ...base, configuration: c.name, targetAccuracy: last.targetAccuracy! });
              continue;
            }
            const evaluator = await Evaluator.create(ort, config, t.data.test, captions);
            try {
              const { accuracy } = await evaluator.evaluate(state.params, state.buffers);
              await record({ ...base, configuration: c.name, targetAccuracy: accuracy });
              if (c.name !== 'source-only') continue;
              // AdaBN: the same weights, batch norm re-estimated on the shift's unlabelled train images
              // (a model without batch norm keeps its accuracy).
              const adapted = await adaptBatchNorm(ort, config, state.params, state.buffers, t.data.train, captions);
              await record({ ...base, configuration: ADABN, targetAccuracy: adapted ? (await evaluator.evaluate(state.params, adapted)).accuracy : accuracy });
            } finally {
              await evaluator.release();
            }
          }
        }
      }
    }
  }
  return readResults(resultsFile);
}

async function storedCaptions(hash: string, state: string | undefined): Promise<Uint8Array> {
  const { api, close } = await connect({ state });
  try {
    return await api.captionSet(hash);
  } finally {
    await close();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

/** mean ± std (n) in points; n 0 (mean NaN) for no values. */
function summary(values: readonly number[]): { mean: number; std: number; n: number } {
  if (!values.length) return { mean: Number.NaN, std: 0, n: 0 };
  return { mean: 100 * mean(values), std: 100 * std(values), n: values.length };
}

/** The markdown table: per preset, a row per configuration, per shift the target accuracy, and the source's. */
export function crossDomainTable(results: readonly CellResult[]): string {
  const lines: string[] = [];
  const presets = [...new Set(results.map((r) => r.preset))];
  const shifts = [...new Set(results.map((r) => r.shift))];
  const cell = (xs: number[]) => {
    if (!xs.length) return '—';
    const s = summary(xs);
    return `${s.mean.toFixed(2)} ± ${s.std.toFixed(2)} (${s.n})`;
  };
  for (const preset of presets) {
    const of = (configuration: string, shift?: string) => results.filter((r) => r.preset === preset && r.configuration === configuration && (!shift || r.shift === shift));
    lines.push(`| ${preset} | source test | ${shifts.map((s) => `target: ${s}`).join(' | ')} |`, `|---|---|${shifts.map(() => '---').join('|')}|`);
    for (const row of ROWS) {
      // A configuration's source accuracy: one per trained model (DANN has one per shift).
      const sourceRuns = new Map(of(row).map((r) => [`${r.seed}|${row.includes('DANN') ? r.shift : ''}`, r.sourceAccuracy]));
      lines.push(`| ${row} | ${cell([...sourceRuns.values()])} | ${shifts.map((s) => cell(of(row, s).map((r) => r.targetAccuracy))).join(' | ')} |`);
    }
    for (const [row, baseline] of [['DANN', 'source-only'], ['align + DANN', 'source-only'], ['DANN', ADABN]]) {
      const gaps = shifts.map((s) => {
        const a = summary(of(row, s).map((r) => r.targetAccuracy));
        const b = summary(of(baseline, s).map((r) => r.targetAccuracy));
        if (!a.n || !b.n) return '—';
        const gap = a.mean - b.mean;
        return `${gap >= 0 ? '+' : ''}${gap.toFixed(2)} (spread ${(a.std + b.std).toFixed(2)})`;
      });
      lines.push(`| ${row} − ${baseline} | | ${gaps.join(' | ')} |`);
    }
    lines.push('');
  }
  const r0 = results[0];
  if (r0) {
    lines.push(
      `Accuracy in % (mean ± std over seeds, n results); ${r0.epochs} epochs on ${r0.trainLimit || 'all'} training images, onnxruntime ${r0.runtime === 'native' ? 'node (native)' : 'web (wasm)'}, captions ${r0.captions}. ` +
        `Gap rows: the difference of the means, and the two rows' std summed. A DANN row's source column pools its models of every shift. ` +
        `AdaBN re-estimates batch norm on the target's unlabelled train images; a preset without batch norm (seed-cnn) has nothing to re-estimate, so its AdaBN row is source-only's.`,
    );
  }
  return lines.join('\n');
}

export async function writeCrossDomainReport(results: readonly CellResult[], out: string): Promise<void> {
  await writeFile(path.join(out, 'table.md'), `${crossDomainTable(results)}\n`);
  const presets = [...new Set(results.map((r) => r.preset))];
  const shifts = [...new Set(results.map((r) => r.shift))];
  const groups = presets.flatMap((preset) =>
    shifts.map((shift) => ({
      label: `${preset} · ${shift}`,
      bars: ROWS.map((row) => {
        const s = summary(results.filter((r) => r.preset === preset && r.shift === shift && r.configuration === row).map((r) => r.targetAccuracy));
        return { label: row, mean: s.mean, std: s.std };
      }),
    })),
  );
  await writeFile(path.join(out, 'chart.svg'), groupedBarChart('Target-domain test accuracy (mean ± std over seeds)', groups, ROWS));
}

export async function crossDomainCommand(argv: string[]): Promise<void> {
  const o = crossDomainOptions(argv);
  const results = o.tableOnly ? await readResults(path.join(o.out, 'results.jsonl')) : await runCrossDomain(o, console.log);
  if (!results.length) throw new UsageError(`no results in ${o.out}`);
  await writeCrossDomainReport(results, o.out);
  console.log(crossDomainTable(results));
  console.log(`\nwritten: ${path.join(o.out, 'results.jsonl')}, table.md, chart.svg`);
}
