// `edgetrain start`: the local cluster. API + coordinator in workerd with persistent state, K gradient
// workers in processes of their own, the dataset prepared if missing, one run triggered over HTTP and
// followed to the end. `--serve`: the cluster only, serving until Ctrl-C; it launches its workers on
// every run created on it (`edgetrain run`), as `--keep` does after its run.
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { RunStatus } from '../shared/protocol';
import { ApiClient } from '../workers/gradient/client';
import { NodeWorker } from '../workers/node/runtime';
import { choiceFlag, intFlag, parseFlags, UsageError } from './args';
import { buildDeployAssets, joinLink } from './cluster/deploy-assets';
import { startCloudflareProfile } from './cluster/cloudflare-profile';
import { startCoordinator, startWorkerdWorker } from './cluster/local';
import { DEFAULT_STATE, TOKEN_ENV, localToken } from './connect';
import type { Command } from './command';
import { CONFIG_FLAGS, CONFIG_USAGE, trainConfigFromValues } from './config-flags';
import { loadCifar10 } from './dataset';
import { pct, progressLine as statusLine } from './display';
import { CliError, EXIT } from './errors';
import { prepareDataset, prepareShiftedDataset } from './prepare';
import { targetShift } from './train';
import { shiftedDatasetName } from '../shared/data/corruptions';
import { CLUSTER_FLAGS, CLUSTER_USAGE, DEFAULT_CLUSTER_CONFIG, clusterFromValues, runRequestOf as requestOf } from './run-flags';
import { removeServerFile, servingUrl, writeServerFile } from './target';
import { endLine, watchRun } from './watch';

/** Kept here for the tests and benches that build run requests from a training config. */
export const runRequestOf = requestOf;
export const progressLine = statusLine;

const FLAGS = {
  ...CONFIG_FLAGS,
  ...CLUSTER_FLAGS,
  runtime: { type: 'string' },
  profile: { type: 'string' },
  port: { type: 'string' },
  state: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  keep: { type: 'boolean' },
  serve: { type: 'boolean' },
  run: { type: 'string' },
  captions: { type: 'string' },
  'image-captions': { type: 'string' },
  target: { type: 'string' },
  'target-seed': { type: 'string' },
  quiet: { type: 'boolean' },
  verbose: { type: 'boolean' },
} as const;

/** The flags that describe the run `start` creates; --serve creates none. */
const RUN_ONLY = [...Object.keys(CONFIG_FLAGS), 'micro-batch', 'graph-batch', 'lease-ms', 'commit-every', 'snapshot-every', 'aggregators', 'max-workers', 'verify-rate', 'verify-tolerance', 'aggregation', 'trim', 'data', 'out', 'keep', 'run', 'captions', 'image-captions', 'target', 'target-seed'];

const PROFILES = ['local', 'cloudflare'] as const;
type Profile = (typeof PROFILES)[number];

/** How long after the API's process exits before `start` treats it as lost (see startCluster). */
const EXIT_GRACE_MS = 1000;

/** How often a serving cluster looks for runs to launch its workers on. */
const LAUNCH_POLL_MS = 2000;

export const START_USAGE = `edgetrain start [options]   a training run on the local cluster (API + coordinator + gradient workers)
edgetrain start --serve [--workers N] [--port N] [--state DIR]   the local cluster only, until Ctrl-C
${CONFIG_USAGE}
  --workers N            gradient-worker processes (default: one per core)
  --runtime workerd|node workerd: the Worker's own code in workerd (default); node: ORT in a worker thread
  --profile local|cloudflare  cloudflare: as deployed on Cloudflare, from the wrangler configs: the
                         coordinator supervises its chains through the work queue, one consumer process
                         per worker (max_concurrency), the deployed invocation budget, queue retries
                         and the dead-letter queue, the Workers memory budget at run creation
${CLUSTER_USAGE}
  --port N (8787)        where the API listens (0 = any free port)
  --state DIR            persistent Durable Object, KV and R2 state (default .edgetrain/state)
  --data PATH            CIFAR-10 .tar.gz or folder, used if the dataset is not prepared yet
  --out DIR              where the model and metrics go (default .edgetrain/runs/<run id>)
  --keep                 keep the cluster serving after the run (Ctrl-C to stop), as --serve
  --serve                start the cluster without a run and serve until Ctrl-C: create runs with
                         \`edgetrain run\`; the cluster's workers join every run in state created or training
  --captions HASH        the class caption set (from \`edgetrain captions\`) the heads read; default: seeded placeholders
  --image-captions HASH  per-image captions for the concat head (from \`edgetrain captions --images\`)
  --target FAMILY:SEVERITY  a shifted target domain (CIFAR-10 corrupted, prepared once as cifar10-FAMILY-SEVERITY):
                         its test split is evaluated every epoch; --dann aligns to its train images (required
                         with --dann)   --target-seed N (0)
  --run ID               continue an existing run of this --state (e.g. after Ctrl-C) instead of creating one
  --verbose              show the workerd processes' own output (coordinator and workers)
exit codes: 0 the run completed · 1 it failed or was cancelled, or the cluster could not start · 2 usage · 130 Ctrl-C`;

interface Cluster {
  readonly api: ApiClient;
  readonly url: string;
  readonly workers: number;
  /** Starts the gradient workers on a run, authenticated with its worker token. */
  launch(runId: string, workerToken: string): Promise<void>;
  dispose(): Promise<void>;
}

/** Where the API token of a local cluster is, in words: printed instead of the token off a terminal. */
const tokenPlace = (state: string) => (process.env[TOKEN_ENV] ? `$${TOKEN_ENV}` : path.join(state, 'api-token'));

async function startCluster(opts: { workers: number; runtime: 'workerd' | 'node'; profile: Profile; port: number; state: string; verbose: boolean; tty: boolean }, log: (s: string) => void): Promise<Cluster> {
  const serving = servingUrl(opts.state);
  const answers = serving && (await fetch(`${serving}/v1/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false));
  if (serving && answers) throw new CliError(`a local cluster already serves ${opts.state} at ${serving}: use it (\`edgetrain run\`, \`edgetrain status\`), or stop it first`, 1);
  const token = await localToken(opts.state);
  // The API serves the browser worker page under /worker/, as deployed (wrangler.toml [assets]).
  const assets = await buildDeployAssets();
  // The API's workerd exiting on its own (killed, crashed) leaves nothing to serve: see lost().
  let exited = false;
  let ready: Cluster | undefined;
  let disposing = false;
  // A Ctrl-C in a terminal reaches workerd too (one process group) and its exit may be seen first: the
  // SIGINT handlers exit this process well within the grace before lost() is called.
  const onExit = () =>
    void setTimeout(() => {
      exited = true;
      if (ready && !disposing) lost(ready, opts.state);
    }, EXIT_GRACE_MS).unref();
  const where = { persistDir: opts.state, port: opts.port, token, verbose: opts.verbose, assets, onExit };
  const cloudflare = opts.profile === 'cloudflare' ? startCloudflareProfile({ ...where, workers: opts.workers, log }) : undefined;
  const started = await (cloudflare ?? startCoordinator(where)).catch((e: unknown) => {
    if (/EADDRINUSE|address already in use/i.test(String((e as Error)?.message ?? e))) {
      throw new CliError(`port ${opts.port} is already in use (another \`edgetrain start\`?): pass --port N, or --port 0 for any free port`, 1);
    }
    throw e;
  });
  const coordinator = 'broker' in started ? started.coordinator : started;
  // The Cloudflare profile's consumers and broker go with its coordinator.
  const disposeCoordinator = () => started.dispose();
  log(`API and coordinator at ${coordinator.url} (state in ${opts.state}; API token in ${path.join(opts.state, 'api-token')} unless ${TOKEN_ENV} is set)`);
  // A token goes to a terminal only: output piped into a log file must not hold it.
  log(`  dashboard: ${opts.tty ? `${coordinator.url}/#token=${token}` : `${coordinator.url}/ (the page asks for the token: ${tokenPlace(opts.state)})`}`);
  const api = new ApiClient(coordinator.url, { token });
  const removeOnExit = () => removeServerFile(opts.state);
  const disposers: (() => Promise<void>)[] = [];
  let launch: Cluster['launch'];
  try {
    if ('broker' in started) {
      const s = started.settings;
      // Its coordinators start and supervise their chains through the work queue: nothing to launch.
      launch = async () => undefined;
      log(`Cloudflare profile: ${opts.workers} consumer process(es) (max_concurrency), ${s.budgetMs / 1000} s per invocation, retries ${s.maxRetries} after ${s.retryDelayS} s then the dead-letter queue, ${s.workerMemoryMb} MiB per worker isolate`);
    } else if (opts.runtime === 'workerd') {
      const workers = await Promise.all(Array.from({ length: opts.workers }, (_, index) => startWorkerdWorker({ index, apiUrl: coordinator.url, verbose: opts.verbose })));
      disposers.push(...workers.map((w) => () => w.dispose()));
      // Each workerd worker takes its queue's messages one at a time: a second run waits for the first.
      launch = async (runId, workerToken) => {
        for (const w of workers) await w.start(runId, workerToken);
      };
    } else {
      const workers = Array.from({ length: opts.workers }, () => NodeWorker.start({ runtime: 'web', threads: 1 }));
      const stop = new AbortController();
      disposers.push(async () => stop.abort(), ...workers.map((w) => () => w.dispose()));
      // One run at a time per worker thread, in the order they were launched.
      const queues = workers.map(() => Promise.resolve());
      launch = async (runId, workerToken) => {
        workers.forEach((w, i) => {
          queues[i] = queues[i].then(() =>
            w
              .run(new ApiClient(coordinator.url, { token: workerToken, retryForMs: 60_000 }), runId, stop.signal)
              .then(
                () => undefined,
                (e: unknown) => log(`node worker ${i} stopped: ${e instanceof Error ? e.message : String(e)}`),
              ),
          );
        });
      };
    }
    await writeServerFile(opts.state, coordinator.url);
    // Miniflare's own SIGINT/SIGTERM hook exits the process before an async dispose could finish.
    process.on('exit', removeOnExit);
  } catch (e) {
    removeOnExit();
    for (const d of disposers) await d();
    await disposeCoordinator();
    throw e;
  }
  log(`${opts.workers} gradient worker(s) on the ${opts.runtime} runtime`);
  ready = {
    api,
    url: coordinator.url,
    workers: opts.workers,
    launch: (runId, workerToken) => launch(runId, workerToken),
    async dispose() {
      disposing = true;
      process.off('exit', removeOnExit);
      removeOnExit();
      for (const d of disposers) await d().catch(() => undefined);
      await disposeCoordinator();
    },
  };
  if (exited) lost(ready, opts.state);
  return ready;
}

/**
 * The API and coordinator process exited while `start` ran: it says so, stops its workers, removes its
 * server.json (dispose) and exits 1, rather than serve on without an API.
 */
function lost(cluster: Cluster, state: string): void {
  process.stderr.write(`edgetrain start: the API and coordinator process (workerd) at ${cluster.url} exited unexpectedly; stopping this cluster and its workers (the state stays in ${state}: \`edgetrain start\` again continues from it)\n`);
  void cluster.dispose().finally(() => process.exit(EXIT.failed));
}

/**
 * Launches the cluster's workers on every run in state created or training it has not launched them on
 * (polling the run list); a run that ends and is resumed later is launched again. Returns a stop function.
 */
export function autoLaunch(cluster: Pick<Cluster, 'api' | 'launch' | 'workers'>, log: (s: string) => void, intervalMs = LAUNCH_POLL_MS): () => void {
  const launched = new Set<string>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let lastError = '';
  const tick = async () => {
    try {
      const { runs } = await cluster.api.listRuns();
      for (const r of [...runs].reverse()) {
        if (stopped) return;
        if (r.state === 'created' || r.state === 'training') {
          if (launched.has(r.runId)) continue;
          await cluster.launch(r.runId, await cluster.api.workerToken(r.runId));
          launched.add(r.runId);
          log(`run ${r.runId} (${r.state}): ${cluster.workers} gradient worker(s) launched`);
        } else if (launched.delete(r.runId)) log(`run ${r.runId} ${r.state}`);
      }
      lastError = '';
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (message !== lastError) log(`looking for runs to launch workers on: ${message}`);
      lastError = message;
    }
    if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Serves until the process is stopped (Ctrl-C), launching workers on every run created on the cluster. */
async function serveForever(local: Cluster, state: string, log: (s: string) => void): Promise<never> {
  const tokenFile = path.join(state, 'api-token');
  const defaultState = path.resolve(DEFAULT_STATE) === state;
  const stateFlag = defaultState ? '' : ` --state ${path.relative(process.cwd(), state) || '.'}`;
  const prepared = !!(await local.api.manifest('cifar10'));
  log(`serving at ${local.url} until Ctrl-C; the cluster's ${local.workers} worker(s) join every run created on it`);
  log(`  token: ${tokenPlace(state)}`);
  log(`  create a run:   edgetrain run${stateFlag} --epochs 2 --watch   (from this folder: the URL and token are found through the state)`);
  log(`  from elsewhere: EDGETRAIN_URL=${local.url} EDGETRAIN_TOKEN=$(cat ${tokenFile}) edgetrain run …`);
  if (!prepared) log(`  dataset cifar10 is not prepared here yet: \`edgetrain prepare${stateFlag}\` uploads it (once)`);
  autoLaunch(local, log);
  return new Promise<never>(() => undefined);
}

/** `tty`: whether `log` reaches a terminal; only then are links printed with their tokens. */
export async function runStart(argv: string[], log: (s: string) => void = console.log, tty = !!process.stdout.isTTY): Promise<RunStatus> {
  const flags = parseFlags(argv, FLAGS, 'start');
  if (flags.serve) {
    const given = RUN_ONLY.filter((k) => (flags as Record<string, unknown>)[k] !== undefined);
    if (given.length) throw new UsageError(`start: --serve starts no run, so --${given[0]} has no use: give run options to \`edgetrain run\``);
  }
  const config = trainConfigFromValues(flags);
  const target = flags.run ? undefined : targetShift(flags.target, flags['target-seed'], config.model.dann);
  const workers = intFlag('workers', flags.workers, availableParallelism(), 1);
  const runtime = choiceFlag('runtime', flags.runtime, ['workerd', 'node'] as const, 'workerd');
  const profile = choiceFlag('profile', flags.profile, PROFILES, 'local');
  if (profile === 'cloudflare' && runtime !== 'workerd') throw new UsageError('start: --profile cloudflare runs the gradient script in workerd; --runtime node has no place in it');
  const cluster = clusterFromValues(flags, { ...DEFAULT_CLUSTER_CONFIG, workers });
  const port = intFlag('port', flags.port, 8787, 0);
  const state = path.resolve(flags.state ?? DEFAULT_STATE);
  await mkdir(state, { recursive: true });
  const local = await startCluster({ workers, runtime, profile, port, state, verbose: !!flags.verbose, tty }, log);
  const stop = () => void local.dispose().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (flags.serve) return await serveForever(local, state, log);
    const targetDataset = target && shiftedDatasetName('cifar10', target.shift, target.seed);
    const missing: string[] = [];
    for (const name of ['cifar10', ...(targetDataset ? [targetDataset] : [])]) if (!(await local.api.manifest(name))) missing.push(name);
    if (missing.length) {
      for (const name of missing) log(`dataset ${name} is not prepared in this cluster yet: preparing it once`);
      const data = await loadCifar10({ path: flags.data, log });
      const progress = process.stderr.isTTY ? (s: string) => process.stderr.write(s) : undefined;
      for (const name of missing) {
        const report = name === 'cifar10' ? await prepareDataset(local.api, data, name, undefined, progress) : await prepareShiftedDataset(local.api, data, target!.shift, target!.seed, name, undefined, progress);
        if (progress) process.stderr.write('\n');
        log(`prepared dataset ${name} = ${report.manifest.id.slice(0, 12)}: ${report.uploaded} block(s) uploaded (${(report.bytes / 1e6).toFixed(1)} MB), ${report.skipped} already stored`);
      }
    }
    const captions = { ...(flags.captions ? { captions: flags.captions } : {}), ...(flags['image-captions'] ? { imageCaptions: flags['image-captions'] } : {}) };
    const created = flags.run ? await continueRun(local.api, flags.run) : await local.api.createRun({ ...runRequestOf(config), ...captions, ...(targetDataset ? { targetDataset } : {}), cluster });
    const runId = created.runId;
    const c = created.config;
    log(`run ${runId}${flags.run ? ` (continued at step ${created.step}, ${created.state})` : ''}: ${c.train.model.preset}/${c.train.model.head}${c.train.model.dann ? '+dann' : ''}, ${c.train.epochs} epoch(s) of ${created.totalSteps / c.train.epochs} steps, global batch ${c.train.batch} in shards of ${c.cluster.microBatch}`);
    log(`  status: ${local.url}/v1/runs/${runId}  (\`edgetrain status ${runId}\` from this folder)`);
    const workerToken = await local.api.workerToken(runId);
    log(`  browsers join at: ${tty ? joinLink(local.url, runId, workerToken) : `${joinLink(local.url, runId, undefined)} (the page asks for the run's worker token; the link with it is shown on a terminal)`}`);
    await local.launch(runId, workerToken);
    const live = !flags.quiet && !!process.stderr.isTTY;
    const final = await watchRun(local.api, runId, {
      live,
      write: (s) => void process.stderr.write(s),
      line: log,
      // Off a terminal: a line per epoch, and one every 15 s.
      changeKey: (s) => `${s.state}|${s.epoch}`,
      quietMs: 15_000,
    });
    const out = path.resolve(flags.out ?? path.join('.edgetrain', 'runs', runId));
    await mkdir(out, { recursive: true });
    const metrics = await local.api.metrics(runId);
    await writeFile(path.join(out, 'metrics.json'), JSON.stringify(metrics));
    await writeFile(path.join(out, 'model.onnx'), await local.api.model(runId));
    for (const e of metrics.evals) log(`epoch ${e.epoch}: test loss ${e.loss.toFixed(4)}, test accuracy ${pct(e.accuracy)}`);
    if (final.state !== 'completed') log(endLine(final));
    log(`run ${runId} ${final.state}: final test accuracy ${pct(final.testAccuracy)}; inference model ${path.join(out, 'model.onnx')}; metrics ${path.join(out, 'metrics.json')}`);
    if (flags.keep) await serveForever(local, state, log);
    return final;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await local.dispose();
  }
}

/** A run of this state to continue: one interrupted (Ctrl-C) carries on; a cancelled one is resumed. */
async function continueRun(api: ApiClient, runId: string): Promise<RunStatus> {
  const status = await api.status(runId);
  return status.state === 'cancelled' ? api.resume(runId) : status;
}

export const startCommand: Command = { usage: START_USAGE, run: async (argv, ctx) => ((await runStart(argv, ctx.out.line, ctx.out.tty)).state === 'completed' ? EXIT.ok : EXIT.failed) };
