// One synchronous data-parallel run as a discrete-event model: every step's shards are leased to
// workers, computed, summed (in the coordinator, or in aggregators first), applied, and the new
// version handed out, for the old design (parameters served by the coordinator, the full state
// committed every step) and the new one (versions in R2/the cache, an update log, aggregators).
import { Server, Simulation, normalSampler } from './engine';

export type Design = 'old' | 'new';

/** What one run costs where; every figure in milliseconds, megabytes or MB/s. */
export interface Costs {
  /** A worker's compute for one lease (mean), and its relative spread (standard deviation ÷ mean). */
  readonly computeMs: number;
  readonly computeCv: number;
  /** One request's round trip (worker ↔ API/object, object ↔ object), without the bytes. */
  readonly rpcMs: number;
  /** A worker's link, each way. */
  readonly workerMBps: number;
  /** A Durable Object's work per MB taken in (receiving, decoding and checking, summing). */
  readonly objectInMsPerMB: number;
  /** The coordinator's work per MB it serves (the old design's parameter frames). */
  readonly objectOutMsPerMB: number;
  /** The coordinator's fixed work per step: optimizer, encoding, bookkeeping. */
  readonly applyMs: number;
  /** Committing a step: the full state (old) or the update log (new). */
  readonly commitFullMs: number;
  readonly commitLogMs: number;
  /** New design: the version into the cache before leases go out, and a worker's read of it. */
  readonly publishMs: number;
  readonly versionReadMs: number;
  /** Parameter frame and gradient frame size (4 bytes per parameter); partial sums are twice it. */
  readonly frameMB: number;
  /**
   * A compressed gradient and parameter frame's bytes on the wire (sim/communication.ts), where they
   * differ from frameMB: they shorten the worker's transfers and the old coordinator's serving. The
   * objects' intake stays charged per frameMB: decoding and summing touch every parameter whatever
   * the codec.
   */
  readonly gradientWireMB?: number;
  readonly paramsWireMB?: number;
  /**
   * Local only: the API, the cache, R2 and every Durable Object share one workerd thread, so their
   * work queues on one server (on Cloudflare each object is its own server).
   */
  readonly oneThread: boolean;
}

export interface RunShape {
  readonly design: Design;
  readonly workers: number;
  /** Shards per step (global batch ÷ lease). */
  readonly shards: number;
  /** Aggregator objects (new design; 0 = answers to the coordinator). */
  readonly aggregators: number;
  readonly steps: number;
  readonly seed: number;
}

export interface StepProjection {
  /** Mean milliseconds per step after the first (warm-up) step. */
  readonly stepMs: number;
  /** The coordinator object's busy milliseconds per step. */
  readonly coordinatorBusyMs: number;
  /** The busiest aggregator's busy milliseconds per step (0 without). */
  readonly aggregatorBusyMs: number;
  /** Megabytes into and out of the coordinator object per step. */
  readonly coordinatorInMB: number;
  readonly coordinatorOutMB: number;
}

/** Simulates `shape.steps` steps; each worker takes leases until the step's shards are gone. */
export function simulate(costs: Costs, shape: RunShape): StepProjection {
  const sim = new Simulation();
  const normal = normalSampler(shape.seed);
  const coordinator = new Server(sim, 'coordinator');
  const aggregators = Array.from({ length: shape.aggregators }, (_, g) => (costs.oneThread ? coordinator : new Server(sim, `aggregator ${g}`)));
  const mbps = (mb: number) => (mb / costs.workerMBps) * 1000;
  const f = costs.frameMB;
  const up = costs.gradientWireMB ?? f;
  const down = costs.paramsWireMB ?? f;

  let step = 0;
  let nextShard = 0;
  let counted = 0;
  const groupLeft = new Map<number, number>();
  const releases: number[] = [0];
  const waiting: (() => void)[] = [];
  let inMB = 0;
  let outMB = 0;

  const startStep = () => {
    nextShard = 0;
    counted = 0;
    for (let g = 0; g < shape.aggregators; g++) groupLeft.set(g, Math.ceil((shape.shards - g) / shape.aggregators));
    for (const w of waiting.splice(0)) w();
  };

  const applyStep = () => {
    const commit = shape.design === 'old' ? costs.commitFullMs : costs.commitLogMs;
    const publish = shape.design === 'new' ? costs.publishMs : 0;
    coordinator.serve(costs.applyMs + commit + publish, () => {
      step++;
      releases.push(sim.now);
      if (step < shape.steps) startStep();
    });
  };

  const counts = (n: number) => {
    counted += n;
    if (counted === shape.shards) applyStep();
  };

  /** A shard's answer, from its arrival at the object that sums it. */
  const answer = (shard: number) => {
    if (shape.design === 'new' && shape.aggregators > 0) {
      const g = shard % shape.aggregators;
      aggregators[g].serve(f * costs.objectInMsPerMB, () => {
        const left = groupLeft.get(g)! - 1;
        groupLeft.set(g, left);
        if (left > 0) return;
        const members = Math.ceil((shape.shards - g) / shape.aggregators);
        inMB += 2 * f;
        sim.after(costs.rpcMs / 2, () => coordinator.serve(2 * f * costs.objectInMsPerMB, () => counts(members)));
      });
      return;
    }
    inMB += up;
    coordinator.serve(f * costs.objectInMsPerMB, () => counts(1));
  };

  const worker = (version: { step: number }) => {
    const takeLease = () => {
      if (step >= shape.steps) return;
      if (nextShard >= shape.shards) {
        waiting.push(takeLease);
        return;
      }
      const shard = nextShard++;
      const leasedStep = step;
      sim.after(costs.rpcMs, () => fetchParams(shard, leasedStep));
    };
    const fetchParams = (shard: number, leasedStep: number) => {
      if (version.step === leasedStep) return compute(shard);
      version.step = leasedStep;
      if (shape.design === 'old') {
        outMB += down;
        coordinator.serve(down * costs.objectOutMsPerMB, () => sim.after(costs.rpcMs + mbps(down), () => compute(shard)));
      } else if (costs.oneThread) {
        coordinator.serve(down * costs.objectOutMsPerMB, () => sim.after(costs.rpcMs + mbps(down), () => compute(shard)));
      } else {
        sim.after(costs.versionReadMs + mbps(down), () => compute(shard));
      }
    };
    const compute = (shard: number) => {
      const ms = Math.max(0.5 * costs.computeMs, costs.computeMs * (1 + costs.computeCv * normal()));
      sim.after(ms, () => sim.after(costs.rpcMs / 2 + mbps(up), () => {
        answer(shard);
        takeLease();
      }));
    };
    takeLease();
  };

  startStep();
  for (let w = 0; w < shape.workers; w++) worker({ step: -1 });
  sim.run(() => step >= shape.steps);
  const measured = releases.slice(1);
  const stepMs = (measured[measured.length - 1] - measured[0]) / Math.max(1, measured.length - 1);
  const busiestAggregator = shape.aggregators && !costs.oneThread ? Math.max(...aggregators.map((a) => a.busyMs)) : 0;
  return {
    stepMs,
    coordinatorBusyMs: coordinator.busyMs / shape.steps,
    aggregatorBusyMs: busiestAggregator / shape.steps,
    coordinatorInMB: inMB / shape.steps,
    // New: each version once into the cache and once into R2, whatever the number of workers.
    coordinatorOutMB: shape.design === 'old' ? outMB / shape.steps : 2 * down,
  };
}

/** The cost model's best aggregator count for N shards: it balances an aggregator's N/G frames against the coordinator's G partials of twice a frame's size. */
export const bestAggregators = (shards: number): number => Math.max(1, Math.min(shards, Math.round(Math.sqrt(shards / 2))));
