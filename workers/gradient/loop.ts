// A gradient worker's loop: lease → parameters of that version → data → compute → submit, until the
// run ends or the invocation's budget is nearly spent.
import { TEXT_DIM } from '../../shared/models/heads';
import type { ChainTicket, Lease, RunSpec, RunState } from '../../shared/protocol';
import { captionsForModel } from '../../shared/text/caption-store';
import { encodeEval, type ParameterSet } from '../../shared/wire';
import type { BlockCache, ExampleRequest } from './block-cache';
import { GradientAnswers } from './gradient-answers';
import { ApiError, type ApiClient } from './client';
import type { LeaseComputer } from './lease-computer';
import { ImageCaptionCache } from './image-caption-cache';

export interface WorkOptions {
  readonly api: ApiClient;
  readonly runId: string;
  readonly computer: LeaseComputer;
  readonly cache: BlockCache;
  /** Per-image caption chunks kept in the isolate, in bytes (default 36 MiB: six chunks, for Node and browsers). */
  readonly captionCacheBytes?: number;
  /** Stop taking leases once this many milliseconds (wall) have passed, leaving room for one more. */
  readonly budgetMs: number;
  /** Extend the lease while computing (only where timers run during compute: a Node worker thread). */
  readonly heartbeat?: boolean;
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
  /** Called with each lease as it is taken (progress displays, fault-injection tests). */
  readonly onLease?: (lease: Lease) => void;
  /** A supervised chain's invocation: the delivery that claimed the chain, sent with every lease request. */
  readonly ticket?: ChainTicket;
}

export interface WorkReport {
  /**
   * 'done': the run is over; 'budget': time to hand over to a fresh invocation; 'stopped': aborted;
   * 'excluded': the coordinator excluded this worker after bad submissions; 'superseded': this chain
   * invocation is no longer the chain's (a duplicate delivery, or the chain was started again).
   */
  readonly reason: 'done' | 'budget' | 'stopped' | 'excluded' | 'superseded';
  readonly state?: RunState;
  readonly leases: number;
  readonly accepted: number;
  readonly rejected: number;
  /**
   * Wall milliseconds spent in each phase of the loop, as this worker's clock saw them: diagnostics
   * only. On Cloudflare, Date.now() advances only at I/O (https://developers.cloudflare.com/workers/runtime-apis/performance/),
   * so `compute` reads ~0 there; the coordinator times lease windows and steps on its own clock.
   */
  readonly ms: PhaseTimes;
}

export interface PhaseTimes {
  lease: number;
  params: number;
  data: number;
  compute: number;
  submit: number;
}

// Per isolate: a run's caption vectors are fetched from KV (through the API) once, not per invocation.
const captionVectors = new Map<string, Promise<Float32Array>>();
const imageCaptionCaches = new Map<string, Promise<ImageCaptionCache>>();

function classCaptions(api: ApiClient, spec: RunSpec): Promise<Float32Array> | undefined {
  const { captions: hash, train } = spec.config;
  if (!hash) return undefined;
  const key = `${hash}:${train.model.classes}:${train.model.captionsPerClass}`;
  let vectors = captionVectors.get(key);
  if (!vectors) {
    vectors = api.captionSet(hash).then((bytes) => captionsForModel(bytes, train.model, TEXT_DIM, hash));
    vectors.catch(() => captionVectors.delete(key));
    captionVectors.set(key, vectors);
  }
  return vectors;
}

function imageCaptions(api: ApiClient, spec: RunSpec, budgetBytes: number): Promise<ImageCaptionCache> | undefined {
  const hash = spec.config.imageCaptions;
  if (!hash) return undefined;
  let cache = imageCaptionCaches.get(hash);
  if (!cache) {
    cache = api.imageCaptionIndex(hash).then((index) => new ImageCaptionCache(index, budgetBytes));
    cache.catch(() => imageCaptionCaches.delete(hash));
    imageCaptionCaches.set(hash, cache);
  }
  return cache;
}

export async function workLoop(o: WorkOptions): Promise<WorkReport> {
  const started = Date.now();
  const spec: RunSpec = await o.api.spec(o.runId);
  await o.computer.prepare(spec, await classCaptions(o.api, spec));
  const answers = await GradientAnswers.forRun(spec, async () => (await o.api.identity(o.runId)).workerId);
  const imageCaptionCache = await imageCaptions(o.api, spec, o.captionCacheBytes ?? 36 * 2 ** 20);
  let params: ParameterSet | undefined;
  let leases = 0;
  let accepted = 0;
  let rejected = 0;
  let slowest = 0;
  const ms: PhaseTimes = { lease: 0, params: 0, data: 0, compute: 0, submit: 0 };
  const report = (reason: WorkReport['reason'], state?: RunState): WorkReport => ({ reason, state, leases, accepted, rejected, ms });
  const excluded = (e: ApiError) => {
    o.log?.(`stopping: ${e.body.error}`);
    return report('excluded');
  };

  for (;;) {
    if (o.signal?.aborted) return report('stopped');
    if (Date.now() - started + slowest > o.budgetMs) return report('budget');
    let t = Date.now();
    let reply;
    try {
      reply = await o.api.lease(o.runId, o.ticket);
    } catch (e) {
      if (isExclusion(e)) return excluded(e);
      throw e;
    }
    ms.lease += Date.now() - t;
    if (reply.type === 'done') return report('done', reply.state);
    if (reply.type === 'stop') {
      o.log?.(`stopping: ${reply.error}`);
      return report('superseded');
    }
    if (reply.type === 'wait') continue; // the coordinator already held the request for a while
    const lease = reply.lease;
    o.onLease?.(lease);
    const t0 = (t = Date.now());
    leases++;
    try {
      if (params?.version !== lease.version) params = await o.api.params(o.runId, lease.version, lease.paramsTag);
      ms.params += Date.now() - t;
      const ok = await compute(o, spec, lease, params, answers, ms, imageCaptionCache);
      if (ok) accepted++;
      else rejected++;
    } catch (e) {
      // A lease overtaken by the run (a newer version, a finished run) or whose answer was refused (the
      // coordinator has freed its shard) is dropped; exclusion ends the loop; anything else is fatal.
      if (isExclusion(e)) return excluded(e);
      if (!(e instanceof ApiError) || ![400, 404, 409, 410, 422].includes(e.status)) throw e;
      rejected++;
      o.log?.(`lease ${lease.leaseId} (step ${lease.step}, shard ${lease.shard}) dropped: HTTP ${e.status}: ${e.body.error}`);
    }
    slowest = Math.max(slowest, Date.now() - t0);
  }
}

async function compute(o: WorkOptions, spec: RunSpec, lease: Lease, params: ParameterSet, answers: GradientAnswers, ms: PhaseTimes, imageCaptions?: ImageCaptionCache): Promise<boolean> {
  let t = Date.now();
  const fetchBlock = (sha: string) => o.api.block(sha);
  const [examples, target] = await o.cache.gather(exampleRequests(spec, lease), fetchBlock);
  // Per-image captions are the source's records' (a run with a target domain has none).
  const captions = lease.domain === 'target' ? undefined : await imageCaptions?.rows(lease.split, lease.indices, (chunk) => o.api.captionChunk(chunk));
  const data = { examples, target, captions };
  ms.data += Date.now() - t;
  const beat = o.heartbeat ? heartbeats(o.api, lease) : undefined;
  try {
    const base = { leaseId: lease.leaseId, version: lease.version, step: lease.step, shard: lease.shard, count: lease.indices.length };
    if (lease.kind === 'train') {
      t = Date.now();
      const r = await o.computer.train(lease, params.params, params.buffers, data);
      const computed = Date.now();
      ms.compute += computed - t;
      t = computed;
      const reply = await o.api.submitGradient(lease, answers.frame({ ...base, loss: r.loss, correct: r.correct, grads: r.grads, stats: r.stats, ...(r.domain ? { domain: r.domain } : {}) }));
      ms.submit += Date.now() - t;
      return reply.accepted;
    }
    t = Date.now();
    const r = await o.computer.evaluate(lease, params.params, params.buffers, data);
    const reply = await o.api.submitEval(lease, encodeEval({ ...base, lossSum: r.lossSum, correct: r.correct }));
    ms.compute += Date.now() - t;
    return reply.accepted;
  } finally {
    beat?.stop();
  }
}

/**
 * The datasets a lease reads: its examples (the target's test split for a target eval lease), and a
 * DANN lease's unlabelled target images from the target's train split.
 */
function exampleRequests(spec: RunSpec, lease: Lease): ExampleRequest[] {
  const target = () => {
    if (!spec.targetDataset) throw new Error(`lease ${lease.leaseId} reads the target domain, and run ${spec.runId} has no targetDataset`);
    return spec.targetDataset;
  };
  const requests: ExampleRequest[] = [{ manifest: lease.domain === 'target' ? target() : spec.dataset, split: lease.split, indices: lease.indices }];
  if (lease.dann) requests.push({ manifest: target(), split: 'train', indices: lease.dann.indices });
  return requests;
}

const isExclusion = (e: unknown): e is ApiError => e instanceof ApiError && e.status === 403 && e.body.reason === 'excluded';

/**
 * At most this long between heartbeats: a coordinator that hears nothing for ~10 s may be evicted
 * from memory, and a slow lease (a software WebGPU adapter takes seconds) should not be why.
 */
const HEARTBEAT_MAX_MS = 5000;

/** Extends a lease while it is computed: each heartbeat a third of the way to the current deadline, or sooner. */
function heartbeats(api: ApiClient, lease: Lease): { stop(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const schedule = (deadline: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      api.heartbeat(lease).then(
        (r) => schedule(r.deadline),
        () => undefined, // the lease is gone (answered elsewhere, expired past its limit): stop beating
      );
    }, Math.max(50, Math.min(HEARTBEAT_MAX_MS, (deadline - Date.now()) / 3)));
  };
  schedule(lease.deadline);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
