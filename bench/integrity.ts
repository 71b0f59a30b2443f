// `npm run bench -- integrity [--quick] [--data PATH] [--epochs N] [--train-limit N] [--attacks a,b] [--rates r,s]`: a seed-cnn run on
// real CIFAR-10 through the local cluster (real coordinator, four Node gradient workers) with one of the
// four dishonest (bench/dishonest-worker.ts: random gradients of the honest norm, or fake evaluation
// answers), at verification rates 0, 5 % and 20 % and with median aggregation. One JSON object per run:
// final test accuracy and its distance from the clean run, the step at which the dishonest worker was
// excluded, how many of its answers counted, and the compute spent against the answers needed.
import { startCoordinator } from '../cli/cluster/local';
import { loadCifar10 } from '../cli/dataset';
import { prepareDataset } from '../cli/prepare';
import { runRequestOf } from '../cli/run-flags';
import { FINAL_STATES, type RunStatus } from '../shared/protocol';
import type { Aggregation } from '../shared/training/robust-mean';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../shared/training/config';
import { ApiClient } from '../workers/gradient/client';
import { NodeWorker } from '../workers/node/runtime';
import { dishonest, type Dishonesty } from './dishonest-worker';

interface IntegrityCase {
  readonly attack: Dishonesty | 'none';
  readonly verifyRate: number;
  readonly aggregation: Aggregation;
}

const CASES: readonly IntegrityCase[] = [
  { attack: 'none', verifyRate: 0, aggregation: 'mean' },
  { attack: 'none', verifyRate: 0.05, aggregation: 'mean' },
  { attack: 'none', verifyRate: 0.2, aggregation: 'mean' },
  { attack: 'random-gradient', verifyRate: 0, aggregation: 'mean' },
  { attack: 'random-gradient', verifyRate: 0.05, aggregation: 'mean' },
  { attack: 'random-gradient', verifyRate: 0.2, aggregation: 'mean' },
  { attack: 'random-gradient', verifyRate: 0, aggregation: 'median' },
  { attack: 'fake-eval', verifyRate: 0, aggregation: 'mean' },
  { attack: 'fake-eval', verifyRate: 0.05, aggregation: 'mean' },
  { attack: 'fake-eval', verifyRate: 0.2, aggregation: 'mean' },
];

const WORKERS = 4;
const MICRO_BATCH = 32;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function benchIntegrity(args: string[], print: (o: object) => void): Promise<void> {
  const quick = args.includes('--quick');
  const config: TrainConfig = {
    ...SEED_TRAIN_CONFIG,
    epochs: Number(flag(args, 'epochs') ?? (quick ? 1 : 2)),
    batch: 128,
    trainLimit: Number(flag(args, 'train-limit') ?? (quick ? 1280 : 5000)),
    augment: true,
    normalization: 'cifar',
    schedule: { ...SEED_TRAIN_CONFIG.schedule, decay: 'cosine' },
  };
  const data = await loadCifar10({ path: flag(args, 'data') });
  const coordinator = await startCoordinator();
  const workers = Array.from({ length: WORKERS }, () => NodeWorker.start({ runtime: 'web', threads: 1 }));
  try {
    const api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareDataset(api, data);
    let clean: number | undefined;
    const attacks = flag(args, 'attacks')?.split(',');
    const rates = flag(args, 'rates')?.split(',').map(Number);
    const cases = CASES.filter((c) => (!quick || c.verifyRate !== 0.05) && (!attacks || attacks.includes(c.attack)) && (!rates || rates.includes(c.verifyRate)));
    for (const c of cases) {
      const t0 = Date.now();
      const created = await api.createRun({ ...runRequestOf(config), cluster: { microBatch: MICRO_BATCH, verifyRate: c.verifyRate, aggregation: c.aggregation } });
      const { runId } = created;
      const token = await api.workerToken(runId);
      const stop = new AbortController();
      const clients = workers.map(() => new ApiClient(coordinator.url, { token, retryForMs: 60_000 }));
      const liar = (await clients[WORKERS - 1].identity(runId)).workerId;
      const loops = workers.map((w, i) => {
        const client = clients[i];
        const wrap = c.attack !== 'none' && i === WORKERS - 1 ? (inner: Parameters<typeof dishonest>[0]) => dishonest(inner, c.attack as Dishonesty) : undefined;
        return w.run(client, runId, stop.signal, {}, wrap).catch((e: unknown) => String(e));
      });
      let status: RunStatus = created;
      while (!FINAL_STATES.includes(status.state)) {
        await sleep(500);
        status = await api.status(runId);
      }
      stop.abort();
      await Promise.all(loops);
      const metrics = await api.metrics(runId);
      const summary = status.workers.find((w) => w.worker === liar);
      const excludedAt = summary?.excludedAt;
      const shards = config.batch / MICRO_BATCH;
      const evalShards = Math.ceil(data.test.count / config.evalBatch);
      const needed = metrics.steps.length * shards + metrics.evals.length * evalShards;
      const computed = status.workers.reduce((s, w) => s + w.accepted + w.rejected, 0);
      const accuracy = status.testAccuracy ?? NaN;
      if (c.attack === 'none' && c.verifyRate === 0) clean = accuracy;
      print({
        bench: 'integrity',
        attack: c.attack,
        verifyRate: c.verifyRate,
        aggregation: c.aggregation,
        state: status.state,
        epochs: config.epochs,
        trainImages: config.trainLimit,
        steps: metrics.steps.length,
        testAccuracy: +accuracy.toFixed(4),
        vsCleanPoints: clean === undefined ? null : +((accuracy - clean) * 100).toFixed(2),
        excludedAtStep: excludedAt === undefined ? null : metrics.steps.filter((s) => s.at <= excludedAt).length,
        excludedFor: summary?.excluded ?? null,
        liarShardsCounted: metrics.steps.reduce((s, m) => s + (m.workers?.[liar] ?? 0), 0),
        answersComputed: computed,
        answersNeeded: needed,
        computeOverhead: +(computed / needed - 1).toFixed(3),
        verification: status.verification ?? null,
        wallS: +((Date.now() - t0) / 1000).toFixed(1),
      });
    }
  } finally {
    await Promise.all(workers.map((w) => w.dispose()));
    await coordinator.dispose();
  }
}
