// `npm run bench -- step [--quick] [--preset NAME]`: one training step per preset, batch and runtime; one JSON object per line.
// Each Node measurement runs in a fresh child process so the wasm heap it reports is that graph's own.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEFAULT_AUTODIFF_OPTIONS, type AutodiffOptions } from '../shared/autodiff/rule';
import { buildTrainingGraph } from '../shared/models/compile';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../shared/models/presets';
import { randomFeeds } from '../shared/models/random-feeds';
import { GraphSession } from '../shared/onnx/session';
import { loadOrt, ortWebHeapBytes, type OrtRuntime } from '../workers/ort/node';
import { startOrtWorkerd } from '../cli/cluster/ort-probe';
import { median } from '../shared/stats';

interface StepCase {
  readonly preset: string;
  readonly head: string;
  readonly batch: number;
  readonly convWeightGrad: AutodiffOptions['convWeightGrad'];
  readonly convInputGrad: AutodiffOptions['convInputGrad'];
}

interface StepTiming {
  msPerStep: number;
  wasmHeapMiB?: number;
}

const FORMULATIONS: readonly { label: string; options: AutodiffOptions }[] = [
  { label: 'dW as one im2col GEMM', options: { convWeightGrad: 'im2col', convInputGrad: 'convTranspose' } },
  { label: 'dW as one im2col GEMM, dX as a Conv with the flipped kernel', options: { convWeightGrad: 'im2col', convInputGrad: 'conv' } },
];

const RUNS = 5;
const WARMUP = 2;
const MiB = (bytes: number | undefined) => (bytes === undefined ? undefined : +(bytes / 2 ** 20).toFixed(1));

const modelOf = (c: StepCase): ModelConfig => ({ ...DEFAULT_MODEL_CONFIG, preset: c.preset, head: c.head });

async function timeInNode(c: StepCase, runtime: OrtRuntime): Promise<StepTiming> {
  const ort = await loadOrt(runtime, 1);
  const graph = buildTrainingGraph(modelOf(c), c.batch, c);
  const session = await GraphSession.create(ort, graph.bytes);
  const feeds = randomFeeds(graph, 10, 1);
  const times: number[] = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  return { msPerStep: median(times), wasmHeapMiB: runtime === 'web' ? MiB(ortWebHeapBytes()) : undefined };
}

function timeInChild(c: StepCase, runtime: OrtRuntime): StepTiming | { error: string } {
  const script = fileURLToPath(import.meta.url);
  try {
    const out = execFileSync(process.execPath, [...process.execArgv, script, '--child', JSON.stringify({ c, runtime })], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop()!);
  } catch (e) {
    return { error: (e as { stderr?: string }).stderr?.split('\n').find((l) => l.includes('Error')) ?? String(e) };
  }
}

/** workerd: one Miniflare per case (a fresh isolate, so the heap is this graph's); in-worker timing. */
async function timeInWorkerd(c: StepCase): Promise<StepTiming> {
  const workerd = await startOrtWorkerd();
  try {
    const graph = buildTrainingGraph(modelOf(c), c.batch, c);
    const feeds = randomFeeds(graph, 10, 1);
    const times: number[] = [];
    for (let i = 0; i < WARMUP + RUNS; i++) {
      const r = await workerd.run(graph.bytes, feeds);
      if (i >= WARMUP) times.push(r.workerMs);
    }
    return { msPerStep: median(times), wasmHeapMiB: MiB((await workerd.heap()).wasmHeapBytes) };
  } finally {
    await workerd.dispose();
  }
}

function line(c: StepCase, runtime: string, t: StepTiming | { error: string }, flops: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  if ('error' in t) return { bench: 'step', ...c, runtime, threads: 1, error: t.error };
  return {
    bench: 'step',
    ...c,
    runtime,
    threads: 1,
    msPerStep: +t.msPerStep.toFixed(1),
    imagesPerSecond: +((1000 * c.batch) / t.msPerStep).toFixed(1),
    gflopsPerSecond: +(flops / t.msPerStep / 1e6).toFixed(2),
    ...(t.wasmHeapMiB === undefined ? {} : { wasmHeapMiB: t.wasmHeapMiB }),
    ...extra,
  };
}

const PRESETS: readonly [preset: string, head: string][] = [['seed-cnn', 'align'], ['bn-cnn', 'align'], ['res-cnn', 'linear']];

/** `--quick`: batch 64 only; `--preset NAME`: that preset only. */
export async function benchStep(args: string[], print: (o: object) => void): Promise<void> {
  const quick = args.includes('--quick');
  const batches = quick ? [64] : [32, 64, 128];
  const only = args.includes('--preset') ? args[args.indexOf('--preset') + 1] : undefined;
  const presets = PRESETS.filter(([preset]) => !only || preset === only);
  if (!presets.length) throw new Error(`--preset ${only}: one of ${PRESETS.map(([p]) => p).join(', ')}`);
  for (const [preset, head] of presets) {
    for (const batch of batches) {
      const c: StepCase = { preset, head, batch, ...DEFAULT_AUTODIFF_OPTIONS };
      const flops = buildTrainingGraph(modelOf(c), batch).flops;
      const web = timeInChild(c, 'web');
      print(line(c, 'web-node', web, flops));
      print(line(c, 'web-workerd', await timeInWorkerd(c), flops));
      const native = timeInChild(c, 'native');
      const ratio = 'error' in web || 'error' in native ? undefined : +(web.msPerStep / native.msPerStep).toFixed(2);
      print(line(c, 'native-node', native, flops, ratio === undefined ? {} : { webOverNative: ratio }));
    }
    // Other graph formulations of the conv backward pass, same batch, web runtime.
    for (const formulation of FORMULATIONS) {
      const alt: StepCase = { preset, head, batch: 64, ...formulation.options };
      print(line(alt, 'web-node', timeInChild(alt, 'web'), buildTrainingGraph(modelOf(alt), 64, alt).flops, { formulation: formulation.label }));
    }
  }
}

if (process.argv[2] === '--child') {
  const { c, runtime } = JSON.parse(process.argv[3]) as { c: StepCase; runtime: OrtRuntime };
  timeInNode(c, runtime).then(
    (t) => {
      console.log(JSON.stringify(t));
      process.exit(0);
    },
    (e: unknown) => {
      console.error(`Error: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
