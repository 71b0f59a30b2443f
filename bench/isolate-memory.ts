// The peak memory of one gradient-worker isolate over a whole run, measured on the real thing: the
// Worker's queue consumer in its own workerd process against a local coordinator, on blocks of 5,000
// records (as `edgetrain prepare` cuts them). Sampled through workerd's V8 inspector (JS heap and
// ArrayBuffer backing stores, i.e. dataset blocks, frames, typed arrays) every few ms; ORT's wasm
// memory, which never shrinks, is what the worker reports at the end of its loop.
import { createServer } from 'node:net';
import { startCoordinator, startWorkerdWorker, workerdWorkerName, type LocalCoordinator, type WorkerdWorker } from '../cli/cluster/local';
import { prepareDataset } from '../cli/prepare';
import { syntheticCifar } from './synthetic-data';
import { WORKERS_CACHES, estimateWorkerMemory, evalGraphBatch, type WorkerCaches } from '../shared/memory-budget';
import { FINAL_STATES, type ClusterConfig, type RunRequest, type RunStatus } from '../shared/protocol';
import { ApiClient } from '../workers/gradient/client';
import { connectCdp } from './cdp';

const MiB = 2 ** 20;
export const BLOCK_IMAGES = 5000;

/** 'workers': the Workers defaults (WORKER_MEMORY_MB set, preset graph batches, Workers caches); 'before': this project's defaults before them. */
export type Defaults = 'workers' | 'before';

export interface MemoryCase {
  readonly preset: string;
  readonly head: string;
  readonly defaults: Defaults;
  /** Training steps of 64 images (two leases of 32 each). */
  readonly trainSteps: number;
  /** Test images (the fixture has 5× as many training images): the eval pass covers all of them, in leases of 500. */
  readonly testImages: number;
  /** Give up (throw) when the run has not ended by then. */
  readonly timeoutMs: number;
  /** Communication settings of the run (compression, DiLoCo), over the defaults. */
  readonly communication?: Pick<ClusterConfig, 'compression' | 'diloco'>;
}

export interface HeapPeak {
  /** V8's JS heap (usedSize). */
  readonly jsHeapMiB: number;
  /** ArrayBuffer backing stores (typed arrays, dataset blocks, request bodies); wasm memory excluded. */
  readonly arrayBuffersMiB: number;
  /** The largest sum of the two at one sample. */
  readonly sumMiB: number;
  readonly samples: number;
}

export interface MemoryResult {
  readonly graphBatch: number;
  readonly evalGraphBatch: number;
  readonly caches: WorkerCaches;
  readonly wasmMiB: number;
  readonly worker: HeapPeak;
  /** Wasm heap + the peak JS heap and array buffers: the isolate's measured peak (an upper bound of the sampled sum). */
  readonly peakMiB: number;
  readonly estimateMiB: number;
  /** The coordinator's isolate (API + coordinator Durable Object) over the same run. */
  readonly coordinator: HeapPeak;
  readonly leases: number;
}

/** Today's defaults before the Workers ones: whole-lease graphs, eval in one graph of evalBatch, a 48 MB block cache. */
const BEFORE_CACHES: WorkerCaches = { blockCacheMb: 48, captionCacheMb: 36 };
const EVAL_BATCH = 500;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls one isolate's heap usage until stopped; resolves with the peaks. */
async function sampleHeap(port: number, target: string): Promise<{ stop(): Promise<HeapPeak> }> {
  const cdp = await connectCdp(`ws://127.0.0.1:${port}/core:user:${target}`);
  let js = 0;
  let buffers = 0;
  let sum = 0;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const u = await cdp.send<{ usedSize: number; backingStorageSize?: number }>('Runtime.getHeapUsage').catch(() => undefined);
      if (!u) break;
      const ab = u.backingStorageSize ?? 0;
      js = Math.max(js, u.usedSize);
      buffers = Math.max(buffers, ab);
      sum = Math.max(sum, u.usedSize + ab);
      samples++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      cdp.close();
      const r = (v: number) => +(v / MiB).toFixed(1);
      return { jsHeapMiB: r(js), arrayBuffersMiB: r(buffers), sumMiB: r(sum), samples };
    },
  };
}

/** One run of `c` on a fresh coordinator and a fresh workerd worker; everything is disposed after. */
export async function measureWorkerMemory(c: MemoryCase, log?: (line: string) => void): Promise<MemoryResult> {
  const workers = c.defaults === 'workers';
  const caches = workers ? WORKERS_CACHES : BEFORE_CACHES;
  const coordinatorPort = await freePort();
  let coordinator: LocalCoordinator | undefined;
  let worker: WorkerdWorker | undefined;
  try {
    // A budget the estimate never reaches: it makes run creation resolve the Workers graph batch, and
    // leaves judging the fit to the measurement.
    coordinator = await startCoordinator({ inspectorPort: coordinatorPort, ...(workers ? { workerMemoryMb: 100_000 } : {}) });
    const api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareDataset(api, syntheticCifar(5 * c.testImages, c.testImages), 'fixture', BLOCK_IMAGES);
    const request: RunRequest = {
      dataset: 'fixture',
      model: { preset: c.preset, head: c.head },
      epochs: 1,
      batch: 64,
      trainLimit: 64 * c.trainSteps,
      evalBatch: EVAL_BATCH,
      shuffleBlock: BLOCK_IMAGES,
      cluster: { microBatch: 32, workers: 1, leaseMs: 600_000, ...(workers ? {} : { graphBatch: 0, evalGraphBatch: EVAL_BATCH }), ...c.communication },
    };
    const created = await api.createRun(request);
    const spec = await api.spec(created.runId);
    let wasmBytes: number | undefined;
    let leases = 0;
    const workerPort = await freePort();
    worker = await startWorkerdWorker({
      index: 0,
      apiUrl: coordinator.url,
      cacheMb: caches.blockCacheMb,
      captionCacheMb: caches.captionCacheMb,
      inspectorPort: workerPort,
      onStdout: (line) => {
        const report = /gradient worker: (\{.*\})/.exec(line);
        if (report) {
          const r = JSON.parse(report[1]) as { wasmHeapBytes?: number; leases: number };
          wasmBytes = r.wasmHeapBytes;
          leases += r.leases;
        }
        log?.(line);
      },
    });
    const workerHeap = await sampleHeap(workerPort, workerdWorkerName(0));
    const coordinatorHeap = await sampleHeap(coordinatorPort, 'edgetrain');
    await worker.start(created.runId, created.workerToken);
    let status: RunStatus = created;
    const deadline = Date.now() + c.timeoutMs;
    while (!FINAL_STATES.includes(status.state)) {
      if (Date.now() > deadline) throw new Error(`run ${created.runId} still ${status.state} at step ${status.step} after ${c.timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
      status = await api.status(created.runId);
    }
    if (status.state !== 'completed') throw new Error(`run ${created.runId} ended ${status.state}: ${status.error ?? ''}`);
    for (let i = 0; i < 100 && wasmBytes === undefined; i++) await new Promise((r) => setTimeout(r, 100));
    const workerPeak = await workerHeap.stop();
    const coordinatorPeak = await coordinatorHeap.stop();
    if (wasmBytes === undefined) throw new Error('the worker reported no wasm heap size (no "gradient worker: {…}" line on its stdout)');
    const wasmMiB = +(wasmBytes / MiB).toFixed(1);
    return {
      graphBatch: spec.config.cluster.graphBatch || spec.config.cluster.microBatch,
      evalGraphBatch: evalGraphBatch(spec.config),
      caches,
      wasmMiB,
      worker: workerPeak,
      peakMiB: +(wasmMiB + workerPeak.sumMiB).toFixed(1),
      estimateMiB: estimateWorkerMemory(spec.config, caches, BLOCK_IMAGES).totalMiB,
      coordinator: coordinatorPeak,
      leases,
    };
  } finally {
    await worker?.dispose();
    await coordinator?.dispose();
  }
}
