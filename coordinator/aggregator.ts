// The GradientAggregator Durable Object: sums the gradients of one group of a run's shards (shard s
// of each step goes to aggregator s % aggregators) and forwards one float64 partial sum per step to
// the coordinator, so the coordinator takes in `aggregators` partials per step instead of one frame
// per shard. It does the byte work of each answer (decoding, the checksum, shape, finiteness, the
// norm); whether an answer counts stays the coordinator's decision (`admitShard`), taken on the
// frame's head alone, so every rule about leases, workers and divergence lives in one place.
//
// Its state is the current step's partial, in memory only. If it is lost (eviction, a deploy), the
// coordinator sees a group whose every shard was admitted but whose partial never came, and leases
// those shards again (coordinator.ts reopenLostGroups); a partial that arrives after that is refused.
import { DurableObject } from 'cloudflare:workers';
import type { DurableObjectNamespace, DurableObjectStub } from '@cloudflare/workers-types/index';
import type { RunSpec, SubmitReply } from '../shared/protocol';
import type { PartialSum } from '../shared/training/step-aggregator';
import { runEncodings } from '../shared/training/run-encodings';
import { decodeGradient, WireError, type GradientSubmission } from '../shared/wire';
import { gradientFindings } from './admission';
import { groupShards, type GroupPartial, type GroupRound, type ShardCheck } from './aggregation';
import type { TrainingCoordinator } from './coordinator';
import type { Outcome } from './outcome';

export interface AggregatorEnv {
  readonly COORDINATOR: DurableObjectNamespace<TrainingCoordinator>;
}

interface StepSum {
  readonly step: number;
  readonly round: GroupRound;
  readonly grads: Float64Array;
  readonly stats: Float64Array;
  readonly shards: PartialSum['shards'][number][];
  readonly leases: string[];
  decodeMs: number;
  sumMs: number;
}

export class GradientAggregator extends DurableObject<AggregatorEnv> {
  private spec: RunSpec | undefined;
  private sum: StepSum | undefined;

  async submit(runId: string, group: number, leaseId: string, body: ArrayBuffer, worker: string): Promise<Outcome<SubmitReply>> {
    const coordinator = this.env.COORDINATOR.get(this.env.COORDINATOR.idFromName(runId));
    if (!this.spec) {
      const spec = await coordinator.spec();
      if (!spec.ok) return spec;
      this.spec = spec.value;
    }
    // Whether this shard belongs here is the coordinator's call (it also spends the lease of a misrouted answer).
    const t0 = performance.now();
    let frame: GradientSubmission | undefined;
    let check: ShardCheck;
    try {
      frame = decodeGradient(new Uint8Array(body), runEncodings(this.spec).gradients);
      const head = { leaseId: frame.leaseId, version: frame.version, step: frame.step, shard: frame.shard, count: frame.count, loss: frame.loss, correct: frame.correct, ...(frame.domain ? { domain: frame.domain } : {}) };
      check = { kind: 'frame', head, ...gradientFindings(frame, this.spec) };
    } catch (e) {
      check = { kind: 'unreadable', reason: e instanceof WireError ? e.reason : 'format', message: e instanceof Error ? e.message : String(e) };
    }
    const decodeMs = performance.now() - t0;
    const verdict = await coordinator.admitShard(leaseId, worker, group, check);
    if (!verdict.ok || !verdict.value.count || !frame) return verdict.ok ? { ok: true, value: verdict.value.reply } : verdict;
    return this.add(coordinator, group, leaseId, worker, frame, decodeMs, verdict.value.reply, verdict.value.round);
  }

  /** Adds an admitted answer; the one that completes the group sends the partial and answers with its outcome. */
  private async add(
    coordinator: DurableObjectStub<TrainingCoordinator>,
    group: number,
    leaseId: string,
    worker: string,
    frame: GradientSubmission,
    decodeMs: number,
    reply: SubmitReply,
    round: GroupRound,
  ): Promise<Outcome<SubmitReply>> {
    const spec = this.spec!;
    const t0 = performance.now();
    // A newer step or round: what is summed so far was sent, or given up by the coordinator (its shards
    // leased again). An older one: this answer's lease was taken back after it was admitted.
    const older = this.sum && (this.sum.step > frame.step || (this.sum.step === frame.step && this.sum.round > round));
    if (older) return { ok: true, value: reply };
    if (!this.sum || this.sum.step < frame.step || this.sum.round < round) {
      this.sum = { step: frame.step, round, grads: new Float64Array(spec.paramCount), stats: new Float64Array(spec.bufferCount), shards: [], leases: [], decodeMs: 0, sumMs: 0 };
    }
    const sum = this.sum;
    if (sum.shards.some((s) => s.shard === frame.shard)) return { ok: true, value: reply };
    for (let i = 0; i < sum.grads.length; i++) sum.grads[i] += frame.grads[i];
    for (let i = 0; i < sum.stats.length; i++) sum.stats[i] += frame.stats[i];
    sum.shards.push({ shard: frame.shard, worker, loss: frame.loss, correct: frame.correct, ...(frame.domain ? { domain: frame.domain } : {}) });
    sum.leases.push(leaseId);
    sum.decodeMs += decodeMs;
    sum.sumMs += performance.now() - t0;
    const { aggregators } = spec.config.cluster;
    if (sum.shards.length < groupShards(group, aggregators, spec.config.train.batch / spec.config.cluster.microBatch).length) return { ok: true, value: reply };
    this.sum = undefined;
    const partial: GroupPartial = { step: sum.step, group, round: sum.round, shards: sum.shards, leases: sum.leases, grads: sum.grads, stats: sum.stats, decodeMs: sum.decodeMs, sumMs: sum.sumMs };
    return coordinator.submitPartial(partial);
  }
}
