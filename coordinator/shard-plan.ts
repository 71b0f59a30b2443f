// How a run's work splits into leases: a training step into shards of cluster.microBatch examples, an
// evaluation into shards of train.evalBatch test examples (the last may be short), and what each
// lease carries. With DiLoCo (cluster.diloco.innerSteps > 0) the coordinator's "step" is a round of
// inner steps: versions, leases, step records and snapshots count rounds, and this is the one place
// that maps them to the global steps of the data order. Pure: a function of the run's spec.
import type { Domain } from '../shared/models/layers';
import type { IssuedLease, LeaseKind, RunSpec, TrainLeaseRound } from '../shared/protocol';
import { communicationOf, RoundPlan } from '../shared/training/communication';
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
  /** An evaluation's shards: the source test split's, then (a run with a targetDataset) the target's. */
  readonly evalShards: number;
  readonly sourceEvalShards: number;
  /** DiLoCo rounds (undefined: synchronous SGD, a coordinator step is a global step). */
  readonly rounds: RoundPlan | undefined;
  /** Coordinator steps (rounds with DiLoCo) per epoch, and in the run. */
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;

  constructor(readonly spec: RunSpec) {
    const { train, cluster } = spec.config;
    this.plan = new RunPlan(train, spec.dataset.train.count);
    this.trainShards = train.batch / cluster.microBatch;
    this.sourceEvalShards = Math.ceil(spec.dataset.test.count / train.evalBatch);
    this.evalShards = this.sourceEvalShards + (spec.targetDataset ? Math.ceil(spec.targetDataset.test.count / train.evalBatch) : 0);
    const { innerSteps } = communicationOf(cluster).diloco;
    this.rounds = innerSteps > 0 ? new RoundPlan(this.plan.stepsPerEpoch, innerSteps) : undefined;
    this.stepsPerEpoch = this.rounds ? this.rounds.roundsPerEpoch : this.plan.stepsPerEpoch;
    this.totalSteps = this.stepsPerEpoch * train.epochs;
  }

  /** The global steps coordinator step `step` trains: one, or a DiLoCo round's. */
  globalSteps(step: number): { first: number; count: number } {
    return this.rounds ? this.rounds.steps(step) : { first: step, count: 1 };
  }

  /** The global step reached after `step` coordinator steps (what a trainer checkpoint records). */
  globalStepAfter(step: number): number {
    if (step === 0) return 0;
    const { first, count } = this.globalSteps(step - 1);
    return first + count;
  }

  shards(kind: LeaseKind): number {
    return kind === 'train' ? this.trainShards : this.evalShards;
  }

  /** Examples in a lease of `kind` (a short last round, or the last eval shard, may have fewer; lease windows err long). */
  examplesPerLease(kind: LeaseKind): number {
    if (kind === 'eval') return this.spec.config.train.evalBatch;
    return this.spec.config.cluster.microBatch * (this.rounds?.innerSteps ?? 1);
  }

  /** Examples a train lease of coordinator step `step` computes (its answer's count). */
  trainExamples(step: number): number {
    return this.spec.config.cluster.microBatch * this.globalSteps(step).count;
  }

  /** The test examples of eval shard `shard`: which domain's test split, and where in it. */
  evalRange(shard: number): { domain: Domain; first: number; count: number } {
    const domain = this.evalDomain(shard);
    const size = this.spec.config.train.evalBatch;
    const first = (domain === 'source' ? shard : shard - this.sourceEvalShards) * size;
    const test = domain === 'source' ? this.spec.dataset.test : this.spec.targetDataset!.test;
    return { domain, first, count: Math.max(0, Math.min(size, test.count - first)) };
  }

  evalDomain(shard: number): Domain {
    return shard < this.sourceEvalShards ? 'source' : 'target';
  }

  /** The eval shards of one domain: [from, to). */
  evalShardsOf(domain: Domain): { from: number; to: number } {
    return domain === 'source' ? { from: 0, to: this.sourceEvalShards } : { from: this.sourceEvalShards, to: this.evalShards };
  }

  /** Epochs completed at `step` (an evaluation still due counts its epoch as not completed). */
  epochsDone(step: number, phase: LeaseKind): number {
    return Math.floor(step / this.stepsPerEpoch) - (phase === 'eval' ? 1 : 0);
  }

  /** Whether `step` steps end an epoch (an evaluation follows). */
  endsEpoch(step: number): boolean {
    return step % this.stepsPerEpoch === 0;
  }

  /** The lease for shard `head.shard` of the work of `kind` at `head.step`. */
  lease(kind: LeaseKind, head: LeaseHead): IssuedLease {
    const base = { ...head, runId: this.spec.runId, kind, version: head.step };
    if (kind === 'train') {
      const { microBatch, aggregators } = this.spec.config.cluster;
      const offset = head.shard * microBatch;
      const group = aggregators ? { aggregator: head.shard % aggregators } : {};
      if (this.rounds) return { ...base, ...group, ...this.roundExamples(head.step, offset) };
      const ex = this.plan.examples(head.step, offset, microBatch);
      return {
        ...base,
        ...group,
        epoch: ex.epoch,
        split: 'train',
        indices: [...ex.indices],
        firstPosition: ex.firstPosition,
        ...(ex.dann ? { dann: { indices: [...ex.dann.indices], lambda: ex.dann.lambda } } : {}),
      };
    }
    const { domain, first, count } = this.evalRange(head.shard);
    const indices = Array.from({ length: count }, (_, i) => first + i);
    return { ...base, epoch: head.step / this.stepsPerEpoch - 1, split: 'test', indices, firstPosition: first, ...(domain === 'target' ? { domain } : {}) };
  }

  /** A DiLoCo lease's examples: the shard of each inner step of round `round`, concatenated. */
  private roundExamples(round: number, offset: number): Pick<IssuedLease, 'epoch' | 'split' | 'indices' | 'firstPosition' | 'dann'> & { inner: TrainLeaseRound } {
    const { microBatch } = this.spec.config.cluster;
    const { first, count } = this.globalSteps(round);
    const steps = Array.from({ length: count }, (_, k) => this.plan.examples(first + k, offset, microBatch));
    const dann = steps[0].dann && { indices: steps.flatMap((s) => [...s.dann!.indices]), lambda: steps[0].dann.lambda };
    return {
      epoch: steps[0].epoch,
      split: 'train',
      indices: steps.flatMap((s) => [...s.indices]),
      firstPosition: steps[0].firstPosition,
      ...(dann ? { dann } : {}),
      inner: { first, count, positions: steps.map((s) => s.firstPosition), ...(dann ? { lambdas: steps.map((s) => s.dann!.lambda) } : {}) },
    };
  }
}

const plans = new WeakMap<RunSpec, ShardPlan>();

/** The examples a train answer of coordinator step `step` covers (microBatch; a DiLoCo round's inner steps × microBatch). */
export function trainExamplesOf(spec: RunSpec, step: number): number {
  if (!(communicationOf(spec.config.cluster).diloco.innerSteps > 0)) return spec.config.cluster.microBatch;
  let plan = plans.get(spec);
  if (!plan) plans.set(spec, (plan = new ShardPlan(spec)));
  return plan.trainExamples(step);
}
