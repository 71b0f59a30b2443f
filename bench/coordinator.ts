// `npm run bench -- coordinator [--quick] [--workers 1,2,4,...] [--lease 32] [--steps 20] [--aggregators G|auto]`: the coordinator
// alone under N synthetic workers: no compute and no dataset reads, each worker looping exactly as a
// gradient worker does (lease → the lease's parameter version when it changed → a gradient frame),
// with one pre-encoded frame per worker whose header is patched per lease. seed-cnn/align (658,753
// parameters, 2.6 MB frames), global batch N × lease, a commit every step. Per N: steps/s, MB per step
// and per second into and out of the coordinator, p50/p99 latency of each call, the coordinator's own
// time per step and where it went. Then the N past which throughput stops growing. One JSON object
// per line.
//
// The same file measures the design before parameters left the coordinator (commit d4d1b53): it only
// imports what existed there, and tells the designs apart by whether leases carry a `paramsTag`:
//   git worktree add /tmp/before d4d1b53 && ln -s "$PWD/node_modules" /tmp/before/node_modules
//   cp bench/coordinator.ts /tmp/before/bench/ && cd /tmp/before && npx tsx -e "import('./bench/coordinator.ts')
//     .then((m) => m.benchCoordinator([], (o) => console.log(JSON.stringify(o)))).then(() => process.exit(0))"
import { startCoordinator } from '../cli/cluster/local';
import { prepareDataset } from '../cli/prepare';
import { blankData } from './synthetic-data';
import type { Lease, RunRequest, StepMetric } from '../shared/protocol';
import { median } from '../shared/stats';
import { checksum32, encodeEval, encodeGradient } from '../shared/wire';
import { ApiClient } from '../workers/gradient/client';

const WARMUP_STEPS = 3;
const TRAIN_IMAGES = 16_384;
const TEST_IMAGES = 100;
/** Where the patched fields sit in a gradient frame whose lease id is a 36-character UUID (shared/wire). */
const LEASE_ID_AT = 12;
const VERSION_AT = 48;

type Call = 'lease' | 'params' | 'submit';

interface Traffic {
  /** Bytes sent and received by the workers, per call. */
  readonly sent: Record<Call, number>;
  readonly received: Record<Call, number>;
  readonly latencies: Record<Call, number[]>;
  /** Versions fetched (each one's frame). */
  versions: number;
  /** Milliseconds the bench process spent patching frames. */
  patchMs: number;
  /** Whether leases named their version's tag (the design with parameters in R2). */
  tagged: boolean;
}

const utf8 = new TextEncoder();

function quantile(values: readonly number[], q: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const round = (v: number, digits = 1) => +v.toFixed(digits);

/** Rewrites a frame built for another lease of the same size into this lease's answer. */
function patchFrame(frame: Uint8Array<ArrayBuffer>, lease: Lease): void {
  const view = new DataView(frame.buffer);
  utf8.encodeInto(lease.leaseId, frame.subarray(LEASE_ID_AT, LEASE_ID_AT + 36));
  view.setUint32(VERSION_AT, lease.version, true);
  view.setUint32(VERSION_AT + 4, lease.step, true);
  view.setUint32(VERSION_AT + 8, lease.shard, true);
  view.setUint32(VERSION_AT + 12, lease.indices.length, true);
  view.setUint32(frame.byteLength - 4, checksum32(frame.subarray(0, frame.byteLength - 4)), true);
}

/** One synthetic worker: leases until the run ends, answering each with its patched frame. */
async function syntheticWorker(api: ApiClient, runId: string, frame: Uint8Array<ArrayBuffer>, t: Traffic): Promise<void> {
  let version = -1;
  for (;;) {
    let t0 = performance.now();
    const reply = await api.lease(runId);
    t.latencies.lease.push(performance.now() - t0);
    t.sent.lease += 40;
    t.received.lease += JSON.stringify(reply).length;
    if (reply.type === 'done' || reply.type === 'stop') return;
    if (reply.type === 'wait') continue;
    const lease = reply.lease;
    const tag = (lease as { paramsTag?: string }).paramsTag;
    t.tagged ||= tag !== undefined;
    if (lease.version !== version) {
      t0 = performance.now();
      // The old client takes no tag; the extra argument is ignored there.
      const params = await (api.params as (id: string, v: number, tag?: string) => ReturnType<ApiClient['params']>)(runId, lease.version, tag);
      t.latencies.params.push(performance.now() - t0);
      t.received.params += 4 * (params.params.length + params.buffers.length) + 24;
      t.versions++;
      version = lease.version;
    }
    let body: Uint8Array<ArrayBuffer>;
    if (lease.kind === 'eval') {
      body = encodeEval({ leaseId: lease.leaseId, version: lease.version, step: lease.step, shard: lease.shard, count: lease.indices.length, lossSum: 2.3 * lease.indices.length, correct: 0 });
    } else {
      t0 = performance.now();
      patchFrame(frame, lease);
      t.patchMs += performance.now() - t0;
      body = frame;
    }
    t0 = performance.now();
    try {
      await (lease.kind === 'eval' ? api.submitEval(lease, body) : api.submitGradient(lease, body));
    } catch (e) {
      // A run cancelled under an answer in flight refuses it; anything else is a bench failure.
      if (!(e instanceof Error && /HTTP (404|409|410)/.test(e.message))) throw e;
    }
    t.latencies.submit.push(performance.now() - t0);
    t.sent.submit += body.byteLength;
    t.received.submit += 40;
  }
}

export async function benchCoordinator(args: string[], print: (o: object) => void): Promise<void> {
  const flag = (name: string, fallback: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const quick = args.includes('--quick');
  const counts = flag('workers', quick ? '1,4,16' : '1,2,4,8,16,32,64').split(',').map(Number);
  const leaseSize = Number(flag('lease', '32'));
  const steps = Number(flag('steps', quick ? '8' : '20'));
  // auto: the cost model's best group count, √(N/2) (README: aggregation); 0: answers straight to the coordinator.
  const aggregatorsFlag = flag('aggregators', '0');
  const aggregatorsFor = (n: number) => (aggregatorsFlag === 'auto' ? Math.max(1, Math.round(Math.sqrt(n / 2))) : Number(aggregatorsFlag));

  const coordinator = await startCoordinator();
  const throughput: { workers: number; imagesPerSecond: number; outPerStep: number }[] = [];
  let design = 'after';
  try {
    const api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareDataset(api, blankData(TRAIN_IMAGES, TEST_IMAGES), 'bench', 4096);
    for (const n of counts) {
      const batch = n * leaseSize;
      const epochs = Math.ceil(((WARMUP_STEPS + steps + 2) * batch) / TRAIN_IMAGES);
      const aggregators = aggregatorsFor(n);
      const request: RunRequest = {
        dataset: 'bench',
        batch,
        evalBatch: TEST_IMAGES,
        epochs,
        optimizer: { kind: 'adam', lr: 1e-4 },
        cluster: { microBatch: leaseSize, leaseMs: 600_000, commitEvery: 1, ...(aggregators ? { aggregators } : {}) },
      };
      const run = await api.createRun(request);
      const spec = await api.spec(run.runId);
      const frame = encodeGradient({ leaseId: crypto.randomUUID(), version: 0, step: 0, shard: 0, count: leaseSize, loss: 2.3, correct: 3, grads: new Float32Array(spec.paramCount).fill(1e-4), stats: new Float32Array(spec.bufferCount) });
      const traffic: Traffic = {
        sent: { lease: 0, params: 0, submit: 0 },
        received: { lease: 0, params: 0, submit: 0 },
        latencies: { lease: [], params: [], submit: [] },
        versions: 0,
        patchMs: 0,
        tagged: false,
      };
      const started = performance.now();
      const workers = Array.from({ length: n }, (_, i) =>
        syntheticWorker(new ApiClient(coordinator.url, { token: run.workerToken, retryForMs: 30_000 }), run.runId, frame.slice(), traffic),
      );
      let metrics: readonly StepMetric[] = [];
      while (metrics.length < WARMUP_STEPS + steps + 1) {
        await new Promise((r) => setTimeout(r, 100));
        metrics = (await api.metrics(run.runId)).steps;
      }
      await api.cancel(run.runId);
      await Promise.all(workers);
      const wallMs = performance.now() - started;

      design = traffic.tagged ? 'after' : 'before';
      const measured = metrics.slice(WARMUP_STEPS, WARMUP_STEPS + steps + 1);
      const stepMs = median(measured.slice(1).map((s, i) => s.at - measured[i].at));
      // A step's own times are recorded once its version is in R2, a step after it.
      const timedSteps = measured.filter((s) => s.coordinatorMs > 0);
      const coordinatorMs = median(timedSteps.map((s) => s.coordinatorMs));
      const stepsDone = metrics.length;
      const frameBytes = frame.byteLength;
      const perStep = (bytes: number) => bytes / stepsDone / 1e6;
      // Into the coordinator object: every answer, or with aggregators one float64 partial per group.
      const partialBytes = 8 * (spec.paramCount + spec.bufferCount);
      const inPerStep = aggregators ? (aggregators * partialBytes) / 1e6 + perStep(traffic.sent.lease) : perStep(traffic.sent.submit + traffic.sent.lease);
      // The coordinator object's own egress: in the old design it serves every worker's copy of each
      // version; in the new one it writes each version once to the cache and once to R2.
      const outPerStep = design === 'before' ? perStep(traffic.received.params + traffic.received.lease + traffic.received.submit) : (2 * frameBytes) / 1e6 + perStep(traffic.received.lease + traffic.received.submit);
      const withPhases = timedSteps.flatMap((s) => (s.phases ? [s.phases as unknown as Record<string, number>] : []));
      const phases = withPhases.length ? Object.fromEntries(Object.keys(withPhases[0]).map((k) => [k, round(median(withPhases.map((p) => p[k])), 2)])) : null;
      const line = {
        bench: 'coordinator',
        design,
        workers: n,
        aggregators,
        leasePerWorker: leaseSize,
        steps: measured.length - 1,
        stepsPerSecond: round(1000 / stepMs, 2),
        stepMs: round(stepMs),
        imagesPerSecond: round((batch * 1000) / stepMs),
        mbInPerStep: round(inPerStep, 2),
        mbOutPerStep: round(outPerStep, 2),
        mbInPerSecond: round((inPerStep * 1000) / stepMs),
        mbOutPerSecond: round((outPerStep * 1000) / stepMs),
        workersUploadMbPerStep: round(perStep(traffic.sent.submit), 2),
        workersDownloadMbPerStep: round(perStep(traffic.received.params), 2),
        latencyMs: Object.fromEntries((['lease', 'params', 'submit'] as const).map((c) => [c, { p50: round(quantile(traffic.latencies[c], 0.5)), p99: round(quantile(traffic.latencies[c], 0.99)) }])),
        coordinatorMs: round(coordinatorMs),
        coordinatorShare: round(coordinatorMs / stepMs, 3),
        phases,
        benchPatchMsPerStep: round(traffic.patchMs / stepsDone),
        wallSeconds: round(wallMs / 1000),
      };
      print(line);
      throughput.push({ workers: n, imagesPerSecond: line.imagesPerSecond, outPerStep: line.mbOutPerStep });
    }
  } finally {
    await coordinator.dispose();
  }
  // Saturation: the first N whose doubling (or next count) gains less than 10 % images/s.
  const saturated = throughput.find((p, i) => i + 1 < throughput.length && throughput[i + 1].imagesPerSecond < 1.1 * p.imagesPerSecond);
  print({
    bench: 'coordinator',
    summary: true,
    design,
    aggregators: aggregatorsFlag,
    saturatesAtWorkers: saturated?.workers ?? null,
    imagesPerSecondByWorkers: Object.fromEntries(throughput.map((p) => [p.workers, p.imagesPerSecond])),
    coordinatorOutMbPerStepByWorkers: Object.fromEntries(throughput.map((p) => [p.workers, p.outPerStep])),
  });
}
