// `edgetrain start`: the local cluster. API + coordinator in workerd with persistent state, K gradient
// workers in processes of their own, the dataset prepared if missing, one run triggered over HTTP and
// followed to the end.
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { FINAL_STATES, type RunRequest, type RunStatus } from '../shared/protocol';
import type { TrainConfig } from '../shared/training/config';
import { ApiClient } from '../workers/gradient/client';
import { NodeWorker } from '../workers/node/runtime';
import { choiceFlag, numberFlag, parseFlags } from './args';
import { startCoordinator, startWorkerdWorker } from './cluster/local';
import { DEFAULT_STATE, TOKEN_ENV, localToken } from './connect';
import { CONFIG_FLAGS, CONFIG_USAGE, trainConfigFromValues } from './config-flags';
import { loadCifar10 } from './dataset';
import { prepareDataset } from './prepare';

const FLAGS = {
  ...CONFIG_FLAGS,
  workers: { type: 'string' },
  runtime: { type: 'string' },
  'micro-batch': { type: 'string' },
  'graph-batch': { type: 'string' },
  'lease-ms': { type: 'string' },
  'commit-every': { type: 'string' },
  'snapshot-every': { type: 'string' },
  port: { type: 'string' },
  state: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  keep: { type: 'boolean' },
  run: { type: 'string' },
  captions: { type: 'string' },
  'image-captions': { type: 'string' },
  quiet: { type: 'boolean' },
  verbose: { type: 'boolean' },
} as const;

export const START_USAGE = `edgetrain start [options]   a training run on the local cluster (API + coordinator + gradient workers)
${CONFIG_USAGE}
  --workers N            gradient-worker processes (default: one per core)
  --runtime workerd|node workerd: the Worker's own code in workerd (default); node: ORT in a worker thread
  --micro-batch N (32)   examples per lease      --graph-batch N   examples per graph run inside a lease (accumulated)
  --lease-ms N (30000)  --commit-every N (1)  --snapshot-every N (100)
  --port N (8787)        where the API listens (0 = any free port)
  --state DIR            persistent Durable Object, KV and R2 state (default .edgetrain/state)
  --data PATH            CIFAR-10 .tar.gz or folder, used if the dataset is not prepared yet
  --out DIR              where the model and metrics go (default .edgetrain/runs/<run id>)
  --keep                 keep the cluster serving after the run (Ctrl-C to stop)
  --captions HASH        the class caption set (from \`edgetrain captions\`) the heads read; default: seeded placeholders
  --image-captions HASH  per-image captions for the concat head (from \`edgetrain captions --images\`)
  --run ID               continue an existing run of this --state (e.g. after Ctrl-C) instead of creating one
  --verbose              show the workerd processes' own output (coordinator and workers)`;

export const runRequestOf = (c: TrainConfig): RunRequest => ({
  model: c.model,
  optimizer: { ...c.optimizer },
  schedule: { ...c.schedule },
  epochs: c.epochs,
  batch: c.batch,
  evalBatch: c.evalBatch,
  seed: c.seed,
  augment: c.augment,
  normalization: c.normalization,
  bnMomentum: c.bnMomentum,
  trainLimit: c.trainLimit,
  shuffleBlock: c.shuffleBlock,
});

const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(2)}%`);
const duration = (s: number | null) => (s === null ? '—' : s >= 90 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`);

export function progressLine(s: RunStatus): string {
  const epoch = Math.min(s.epoch + 1, s.epochs);
  return `${s.state} · epoch ${epoch}/${s.epochs} · step ${s.step}/${s.totalSteps}${s.phase === 'eval' ? ' (evaluating)' : ''} · loss ${s.loss?.toFixed(4) ?? '—'} · train ${pct(s.trainAccuracy)} · test ${pct(s.testAccuracy)} · ${s.imagesPerSecond?.toFixed(0) ?? '—'} img/s · ${s.activeWorkers} workers · ETA ${duration(s.etaSeconds)}`;
}

interface Cluster {
  readonly api: ApiClient;
  readonly url: string;
  /** Starts the gradient workers on a run, authenticated with its worker token. */
  launch(runId: string, workerToken: string): Promise<void>;
  dispose(): Promise<void>;
}

async function startCluster(opts: { workers: number; runtime: 'workerd' | 'node'; port: number; state: string; verbose: boolean }, log: (s: string) => void): Promise<Cluster> {
  const token = await localToken(opts.state);
  const coordinator = await startCoordinator({ persistDir: opts.state, port: opts.port, token, verbose: opts.verbose });
  log(`API and coordinator at ${coordinator.url} (state in ${opts.state}; API token in ${path.join(opts.state, 'api-token')} unless ${TOKEN_ENV} is set)`);
  const api = new ApiClient(coordinator.url, { workerId: 'edgetrain-cli', token });
  const disposers: (() => Promise<void>)[] = [];
  let launch: Cluster['launch'];
  try {
    if (opts.runtime === 'workerd') {
      const workers = await Promise.all(Array.from({ length: opts.workers }, (_, index) => startWorkerdWorker({ index, apiUrl: coordinator.url, verbose: opts.verbose })));
      disposers.push(...workers.map((w) => () => w.dispose()));
      launch = async (runId, workerToken) => {
        for (const w of workers) await w.start(runId, workerToken);
      };
    } else {
      const workers = Array.from({ length: opts.workers }, () => NodeWorker.start({ runtime: 'web', threads: 1 }));
      const stop = new AbortController();
      disposers.push(async () => stop.abort(), ...workers.map((w) => () => w.dispose()));
      launch = async (runId, workerToken) => {
        workers.forEach((w, i) =>
          w
            .run(new ApiClient(coordinator.url, { workerId: `node-worker-${i}`, token: workerToken, retryForMs: 60_000 }), runId, stop.signal)
            .catch((e: unknown) => log(`node worker ${i} stopped: ${e instanceof Error ? e.message : String(e)}`)),
        );
      };
    }
  } catch (e) {
    for (const d of disposers) await d();
    await coordinator.dispose();
    throw e;
  }
  log(`${opts.workers} gradient worker(s) on the ${opts.runtime} runtime`);
  return {
    api,
    url: coordinator.url,
    launch: (runId, workerToken) => launch(runId, workerToken),
    async dispose() {
      for (const d of disposers) await d().catch(() => undefined);
      await coordinator.dispose();
    },
  };
}

export async function startCommand(argv: string[], log: (s: string) => void = console.log): Promise<RunStatus> {
  const flags = parseFlags(argv, FLAGS, 'start');
  const config = trainConfigFromValues(flags);
  const workers = numberFlag('workers', flags.workers, availableParallelism());
  const runtime = choiceFlag('runtime', flags.runtime, ['workerd', 'node'] as const, 'workerd');
  const cluster = {
    microBatch: numberFlag('micro-batch', flags['micro-batch'], 32),
    graphBatch: numberFlag('graph-batch', flags['graph-batch'], 0),
    leaseMs: numberFlag('lease-ms', flags['lease-ms'], 30_000),
    commitEvery: numberFlag('commit-every', flags['commit-every'], 1),
    snapshotEvery: numberFlag('snapshot-every', flags['snapshot-every'], 100),
    workers,
  };
  const state = path.resolve(flags.state ?? DEFAULT_STATE);
  await mkdir(state, { recursive: true });
  const local = await startCluster({ workers, runtime, port: numberFlag('port', flags.port, 8787), state, verbose: !!flags.verbose }, log);
  const stop = () => void local.dispose().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  try {
    if (!(await local.api.manifest('cifar10'))) {
      log('dataset cifar10 is not prepared in this cluster yet: preparing it once');
      const data = await loadCifar10({ path: flags.data, log });
      const report = await prepareDataset(local.api, data, 'cifar10', undefined, process.stderr.isTTY ? (s) => process.stderr.write(s) : undefined);
      if (process.stderr.isTTY) process.stderr.write('\n');
      log(`prepared dataset ${report.manifest.id.slice(0, 12)}: ${report.uploaded} block(s) uploaded (${(report.bytes / 1e6).toFixed(1)} MB), ${report.skipped} already stored`);
    }
    const captions = { ...(flags.captions ? { captions: flags.captions } : {}), ...(flags['image-captions'] ? { imageCaptions: flags['image-captions'] } : {}) };
    const created = flags.run ? await continueRun(local.api, flags.run) : await local.api.createRun({ ...runRequestOf(config), ...captions, cluster });
    const runId = created.runId;
    const c = created.config;
    log(`run ${runId}${flags.run ? ` (continued at step ${created.step}, ${created.state})` : ''}: ${c.train.model.preset}/${c.train.model.head}${c.train.model.dann ? '+dann' : ''}, ${c.train.epochs} epoch(s) of ${created.totalSteps / c.train.epochs} steps, global batch ${c.train.batch} in shards of ${c.cluster.microBatch}`);
    log(`  status: ${local.url}/v1/runs/${runId}`);
    await local.launch(runId, await local.api.workerToken(runId));
    const final = await follow(local.api, runId, !flags.quiet && process.stderr.isTTY, log);
    const out = path.resolve(flags.out ?? path.join('.edgetrain', 'runs', runId));
    await mkdir(out, { recursive: true });
    const metrics = await local.api.metrics(runId);
    await writeFile(path.join(out, 'metrics.json'), JSON.stringify(metrics));
    await writeFile(path.join(out, 'model.onnx'), await local.api.model(runId));
    for (const e of metrics.evals) log(`epoch ${e.epoch}: test loss ${e.loss.toFixed(4)}, test accuracy ${pct(e.accuracy)}`);
    log(`run ${runId} ${final.state}: final test accuracy ${pct(final.testAccuracy)}; inference model ${path.join(out, 'model.onnx')}; metrics ${path.join(out, 'metrics.json')}`);
    if (flags.keep) {
      log(`the cluster keeps serving at ${local.url} (Ctrl-C to stop)`);
      await new Promise(() => undefined);
    }
    return final;
  } finally {
    process.off('SIGINT', stop);
    await local.dispose();
  }
}

/** A run of this state to continue: one interrupted (Ctrl-C) carries on; a cancelled one is resumed. */
async function continueRun(api: ApiClient, runId: string): Promise<RunStatus> {
  const status = await api.status(runId);
  return status.state === 'cancelled' ? api.resume(runId) : status;
}

/** Polls the run's status until it ends, with a one-line progress display on a terminal. */
async function follow(api: ApiClient, runId: string, live: boolean, log: (s: string) => void): Promise<RunStatus> {
  let lastLogged = 0;
  let lastEpoch = -1;
  for (;;) {
    const s = await api.status(runId);
    const line = progressLine(s);
    if (live) process.stderr.write(`\r\x1b[K${line}`);
    else if (Date.now() - lastLogged > 15_000 || s.epoch !== lastEpoch) {
      log(line);
      lastLogged = Date.now();
      lastEpoch = s.epoch;
    }
    if (FINAL_STATES.includes(s.state)) {
      if (live) process.stderr.write('\n');
      return s;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
