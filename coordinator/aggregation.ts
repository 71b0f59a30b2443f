// What passes between a run's gradient aggregators (aggregator.ts) and its coordinator: which shards
// an aggregator sums, what it tells the coordinator about an answer, and the partial sum it forwards.
import type { SubmitReply } from '../shared/protocol';
import type { GradientSubmission } from '../shared/wire';
import type { PartialSum } from '../shared/training/step-aggregator';
import type { Failure } from './outcome';

/** What the checks on a gradient frame's bytes found (admission.ts gradientFindings). */
export interface FrameFindings {
  readonly norm: number;
  /** The replay guard's digest of the gradient (replay-guard.ts replayDigest); none for a constant one. */
  readonly digest?: string;
  readonly nonFinite?: string;
  readonly shape?: Failure;
  readonly range?: Failure;
}

/** What the coordinator needs of an answer to decide whether it counts (the bytes stay with the aggregator). */
export type ShardCheck =
  | ({ readonly kind: 'frame'; readonly head: Omit<GradientSubmission, 'grads' | 'stats'> } & FrameFindings)
  | { readonly kind: 'unreadable'; readonly reason: string; readonly message: string };

/**
 * Which round of a group's answers an admission belongs to: a new round starts with each step, each
 * coordinator start and each time the coordinator gives up on a group's sum and leases its shards
 * again. Answers of an older round are dead (their leases were taken back); an aggregator sums only
 * the newest round it has seen. A timestamp, so it grows across coordinator restarts too.
 */
export type GroupRound = number;

/** What the coordinator answers an aggregator about one answer. */
export interface ShardAdmission {
  /** The worker's reply (also for answers that do not count: duplicates). */
  readonly reply: SubmitReply;
  /** Whether to add the answer to the group's sum. */
  readonly count: boolean;
  readonly round: GroupRound;
}

/** One group's sum for one step, as the coordinator takes it. */
export interface GroupPartial extends PartialSum {
  readonly step: number;
  readonly group: number;
  readonly round: GroupRound;
  readonly leases: readonly string[];
  /** The aggregator's milliseconds decoding/checking and summing this step's answers. */
  readonly decodeMs: number;
  readonly sumMs: number;
}

/** The shards of a step that aggregator `group` of `count` sums. */
export const groupShards = (group: number, count: number, shards: number): number[] => Array.from({ length: shards }, (_, s) => s).filter((s) => s % count === group);
