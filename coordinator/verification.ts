// Verification by duplicate leases: a secret, random fraction of a step's (or an evaluation's) shards
// must be answered alike by two workers of different identities before the shard counts. On a
// disagreement the shard goes to a third worker (and on, up to MAX_ANSWERS); the first answer two
// workers agree on counts and the workers whose answers differ from it are the liars. Pure: the
// coordinator holds one ShardVerification per step and per evaluation and acts on its verdicts
// (excluding liars, discarding what they contributed).
import { DEFAULT_CLUSTER_CONFIG, type ClusterConfig } from '../shared/protocol';
import type { ShardResult } from '../shared/training/step-aggregator';

/** Answers to one shard that all disagree at this count end the run: the backend is not deterministic. */
export const MAX_ANSWERS = 5;

export interface HeldAnswer<T> {
  readonly worker: string;
  readonly leaseId: string;
  readonly value: T;
}

export type Verdict<T> =
  /** The shard needs more answers (it goes to another worker). */
  | { readonly type: 'wait' }
  /** Two workers agree: `value` counts; `liars` answered otherwise (with their leases). */
  | { readonly type: 'agreed'; readonly value: T; readonly liars: readonly HeldAnswer<T>[] }
  /** MAX_ANSWERS answers, no two alike. */
  | { readonly type: 'unresolved'; readonly answers: number };

/** The shards of `shards` drawn for verification at `rate`, from a secret source: a worker cannot tell. */
export function drawVerified(shards: number, rate: number): Set<number> {
  const out = new Set<number>();
  if (rate <= 0) return out;
  const draws = crypto.getRandomValues(new Uint32Array(shards));
  for (let s = 0; s < shards; s++) if (draws[s] / 2 ** 32 < rate) out.add(s);
  return out;
}

export class ShardVerification<T> {
  private readonly held = new Map<number, HeldAnswer<T>[]>();
  private readonly verified: Set<number>;

  constructor(
    /** The shards drawn for verification. */
    verified: ReadonlySet<number>,
    private readonly agree: (a: T, b: T) => boolean,
  ) {
    this.verified = new Set(verified);
  }

  /** Whether answers to `shard` are held until another worker's agrees. */
  checks(shard: number): boolean {
    return this.verified.has(shard);
  }

  private readonly suspects = new Set<number>();

  /** Verifies a shard not drawn, because an answer to it looks wrong (suspect answers, below). */
  escalate(shard: number): void {
    this.verified.add(shard);
    this.suspects.add(shard);
  }

  /** Whether the shard is verified because an answer looked suspect (not drawn). */
  suspect(shard: number): boolean {
    return this.suspects.has(shard);
  }

  /** Answers held for the shard now. */
  answersTo(shard: number): number {
    return this.held.get(shard)?.length ?? 0;
  }

  /** Answers a verified shard still wants from workers not yet asked (undefined: not verified). */
  more(shard: number): number | undefined {
    if (!this.verified.has(shard)) return undefined;
    const held = this.held.get(shard)?.length ?? 0;
    return Math.min(MAX_ANSWERS, Math.max(2, held + 1)) - held;
  }

  /** Adds a worker's answer (at most one per worker and shard; lease picking sees to it). */
  add(shard: number, answer: HeldAnswer<T>): Verdict<T> {
    const answers = [...(this.held.get(shard) ?? []).filter((a) => a.worker !== answer.worker), answer];
    this.held.set(shard, answers);
    const match = answers.find((a) => a !== answer && this.agree(a.value, answer.value));
    if (match) {
      this.held.delete(shard);
      return { type: 'agreed', value: match.value, liars: answers.filter((a) => a !== answer && a !== match && !this.agree(a.value, match.value)) };
    }
    return answers.length >= MAX_ANSWERS ? { type: 'unresolved', answers: answers.length } : { type: 'wait' };
  }

  /** Drops what an excluded worker answered: its held answers' leases, to be leased again. */
  dropWorker(worker: string): string[] {
    const leases: string[] = [];
    for (const [shard, answers] of this.held) {
      const kept = answers.filter((a) => a.worker !== worker);
      for (const a of answers) if (a.worker === worker) leases.push(a.leaseId);
      if (kept.length) this.held.set(shard, kept);
      else this.held.delete(shard);
    }
    return leases;
  }

  /** Answers held now (for status and memory accounting). */
  get heldCount(): number {
    let n = 0;
    for (const answers of this.held.values()) n += answers.length;
    return n;
  }
}

// Suspect evaluation answers. Beside the secret draw, an evaluation part whose accuracy lies far
// outside the evaluation's others is verified too. A false suspicion costs one duplicate lease, never
// an exclusion: only a contradicted answer excludes its worker. (Gradients have no such test: held
// against the sum of a step's other answers, a quarter of honest seed-cnn gradients pointed as far away
// as a random direction does, at cosines below 4/√n.)

/** An evaluation part this many binomial standard deviations from the reference accuracy is verified. */
export const SUSPECT_SIGMAS = 6;

/** Whether `correct` of `count` is implausible against an accuracy `reference` (a fraction). */
export function evalSuspect(correct: number, count: number, reference: number | undefined): boolean {
  if (reference === undefined || count === 0) return false;
  const p = Math.min(Math.max(reference, 0.01), 0.99);
  return Math.abs(correct / count - reference) > SUSPECT_SIGMAS * Math.sqrt((p * (1 - p)) / count);
}

/** Relative L2 distance of two vectors (0 when both are zero). */
export function relativeDistance(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] - b[i];
    d += x * x;
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const scale = Math.sqrt(Math.max(na, nb));
  return scale === 0 ? 0 : Math.sqrt(d) / scale;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

const close = (a: number, b: number, tolerance: number) => Math.abs(a - b) <= tolerance * Math.max(Math.abs(a), Math.abs(b));

/** Whether two DANN answers' domain figures agree (both absent, for other runs); `count` images a domain. */
function domainsAgree(a: ShardResult['domain'], b: ShardResult['domain'], tolerance: number, count: number): boolean {
  if (!a || !b) return a === b;
  if (tolerance === 0) return a.loss === b.loss && a.correct === b.correct;
  return close(a.loss, b.loss, tolerance) && Math.abs(a.correct - b.correct) <= Math.ceil(tolerance * 2 * count);
}

/** Whether two gradient answers agree: bit for bit at tolerance 0, else within `tolerance` (relative L2). */
export function gradientsAgree(tolerance: number, count: number) {
  return (a: ShardResult, b: ShardResult): boolean => {
    if (!domainsAgree(a.domain, b.domain, tolerance, count)) return false;
    if (tolerance === 0) return a.loss === b.loss && a.correct === b.correct && sameBits(a.grads, b.grads) && sameBits(a.stats, b.stats);
    return (
      close(a.loss, b.loss, tolerance) &&
      Math.abs(a.correct - b.correct) <= Math.ceil(tolerance * count) &&
      relativeDistance(a.grads, b.grads) <= tolerance &&
      relativeDistance(a.stats, b.stats) <= tolerance
    );
  };
}

export interface EvalAnswer {
  readonly worker: string;
  readonly lossSum: number;
  readonly correct: number;
  readonly count: number;
}

export function evalsAgree(tolerance: number) {
  return (a: EvalAnswer, b: EvalAnswer): boolean =>
    a.count === b.count && (tolerance === 0 ? a.lossSum === b.lossSum && a.correct === b.correct : close(a.lossSum, b.lossSum, tolerance) && Math.abs(a.correct - b.correct) <= Math.ceil(tolerance * a.count));
}

/** A run's integrity settings; runs created before they existed have none (no verification, the mean). */
export function integrityOf(c: ClusterConfig): Pick<ClusterConfig, 'verifyRate' | 'verifyTolerance' | 'aggregation' | 'trim'> {
  const d = DEFAULT_CLUSTER_CONFIG;
  return { verifyRate: c.verifyRate ?? d.verifyRate, verifyTolerance: c.verifyTolerance ?? d.verifyTolerance, aggregation: c.aggregation ?? d.aggregation, trim: c.trim ?? d.trim };
}

/**
 * What the coordinator may hold of whole answers within a step: a Durable Object's isolate has 128 MB
 * (https://developers.cloudflare.com/durable-objects/platform/limits/), shared with the run's
 * parameters, optimizer state and the step's float64 sum.
 */
export const KEPT_ANSWERS_BUDGET = 48 * 1024 * 1024;

/**
 * Verification holds a step's verified answers until a second arrives, and a robust aggregation keeps
 * every shard's gradient: a step's shards × (parameters + buffers) × 4 bytes at most must fit.
 */
export function keptAnswersProblem(c: ClusterConfig, shardsPerStep: number, paramCount: number, bufferCount: number): string | undefined {
  const { verifyRate, aggregation } = integrityOf(c);
  if (verifyRate === 0 && aggregation === 'mean') return undefined;
  const bytes = shardsPerStep * (paramCount + bufferCount) * 4;
  if (bytes <= KEPT_ANSWERS_BUDGET) return undefined;
  const why = verifyRate > 0 ? `verifyRate ${verifyRate}` : `aggregation '${aggregation}'`;
  return `${why} keeps up to ${shardsPerStep} answers of ${((paramCount + bufferCount) * 4 / 2 ** 20).toFixed(1)} MiB in the coordinator (${(bytes / 2 ** 20).toFixed(0)} MiB), over its ${KEPT_ANSWERS_BUDGET / 2 ** 20} MiB budget: use fewer, larger shards (cluster.microBatch)`;
}
