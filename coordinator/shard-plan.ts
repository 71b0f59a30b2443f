// How a run's work splits into leases: a training step into shards of cluster.microBatch examples, an
// evaluation into shards of train.evalBatch test examples (the last may be short), and what each
// lease carries. Pure: a function of the run's spec.
import type { IssuedLease, LeaseKind, RunSpec } from '../shared/protocol';
import { RunPlan } from '../shared/training/plan';

/** What identifies a lease apart from its examples. */
export interface LeaseHead {
  readonly leaseId: string;
  readonly step: number;
  readonly shard: number;
  readonly deadline: number;
  /** The checksum of the parameter version the lease computes with. */
  readonly paramsTag: string;
}

export class ShardPlan {
  readonly plan: RunPlan;
  readonly trainShards: number;
  readonly evalShards: number;

  constructor(readonly spec: RunSpec) {
    const { train, cluster } = spec.config;
    this.plan = new RunPlan(train, spec.dataset.train.count);
    this.trainShards = train.batch / cluster.microBatch;
    this.evalShards = Math.ceil(spec.dataset.test.count / train.evalBatch);
  }

  shards(kind: LeaseKind): number {
    return kind === 'train' ? this.trainShards : this.evalShards;
  }

  /** Examples in a lease of `kind` (the last eval shard may have fewer; lease windows err long). */
  examplesPerLease(kind: LeaseKind): number {
    return kind === 'train' ? this.spec.config.cluster.microBatch : this.spec.config.train.evalBatch;
  }

  /** The test examples of eval shard `shard`. */
  evalRange(shard: number): { first: number; count: number } {
    const size = this.spec.config.train.evalBatch;
    const first = shard * size;
    return { first, count: Math.max(0, Math.min(size, this.spec.dataset.test.count - first)) };
  }

  /** Epochs completed at `step` (an evaluation still due counts its epoch as not completed). */
  epochsDone(step: number, phase: LeaseKind): number {
    return Math.floor(step / this.plan.stepsPerEpoch) - (phase === 'eval' ? 1 : 0);
  }

  /** Whether `step` steps end an epoch (an evaluation follows). */
  endsEpoch(step: number): boolean {
    return step % this.plan.stepsPerEpoch === 0;
  }

  /** The lease for shard `head.shard` of the work of `kind` at `head.step`. */
  lease(kind: LeaseKind, head: LeaseHead): IssuedLease {
    const base = { ...head, runId: this.spec.runId, kind, version: head.step };
    if (kind === 'train') {
      const { microBatch } = this.spec.config.cluster;
      const ex = this.plan.examples(head.step, head.shard * microBatch, microBatch);
      const { aggregators } = this.spec.config.cluster;
      return {
        ...base,
        ...(aggregators ? { aggregator: head.shard % aggregators } : {}),
        epoch: ex.epoch,
        split: 'train',
        indices: [...ex.indices],
        firstPosition: ex.firstPosition,
        ...(ex.dann ? { dann: { indices: [...ex.dann.indices], lambda: ex.dann.lambda } } : {}),
      };
    }
    const { first, count } = this.evalRange(head.shard);
    return { ...base, epoch: head.step / this.plan.stepsPerEpoch - 1, split: 'test', indices: Array.from({ length: count }, (_, i) => first + i), firstPosition: first };
  }
}
