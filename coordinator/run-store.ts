// The run's durable state in the Durable Object's SQLite (tables in coordinator/schema.ts): the one
// run row, the parameter/buffer/optimizer tensors, step and evaluation metrics. The run row has one
// writer, `writeRun`; everything here is synchronous, so a caller's writes with no `await` between
// them commit together (and `transaction` makes that explicit where it matters).
import type { DurableObjectStorage, SqlStorage } from '@cloudflare/workers-types/index';
import type { LeaseKind, RunSpec, RunState, StepPhases } from '../shared/protocol';
import type { DomainResult } from '../shared/training/step';
import { decodeUpdate, encodeUpdate, type StepUpdate } from '../shared/wire';
import { migrate } from './schema';

/** A run as the API knows it: identity, spec and lifecycle state. */
export interface RunRecord {
  readonly runId: string;
  readonly spec: RunSpec;
  readonly createdAt: number;
  state: RunState;
  error: string | null;
  updatedAt: number;
}

/** Where training stands: steps applied (the parameter version), and whether that step's evaluation is due. */
export interface Position {
  readonly step: number;
  readonly phase: LeaseKind;
  /** The optimizer's own step count (bias correction), stored with its slots. */
  readonly optimizerStep: number;
}

/** Parameters, batch-norm running statistics and optimizer slots, flat. */
export interface Tensors {
  readonly params: Float32Array;
  readonly buffers: Float32Array;
  readonly slots: readonly Float32Array[];
}

/** Which step the full state in storage belongs to. */
export interface StatePoint {
  readonly step: number;
  readonly optimizerStep: number;
}

export interface StoredRun {
  readonly record: RunRecord;
  /** The committed position: the full state's step, plus the logged updates after it. */
  readonly position: Position;
  /** The tensors, as of `stateAt` (≤ the committed step). */
  readonly tensors: Tensors;
  readonly stateAt: StatePoint;
}

/** One row of step_metrics as the coordinator writes it. */
export interface StepRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  readonly accuracy: number;
  readonly images: number;
  readonly stepMs: number;
  readonly at: number;
  /** Whose answers the step counted: worker id → shards. */
  readonly workers: Readonly<Record<string, number>>;
  /** DANN: the domain classifier's loss (mean over the shards) and correct count over the step's 2 × images source and target images. */
  readonly domain?: DomainResult;
}

/** A range of eval shards, [from, to): one domain's (ShardPlan.evalShardsOf). */
export interface ShardRange {
  readonly from: number;
  readonly to: number;
}

/** An evaluation's mean loss and accuracy over one test split. */
export interface EvalScore {
  readonly loss: number;
  readonly accuracy: number;
}

/**
 * DANN: the domain classifier over an epoch's training steps: the images-weighted mean of the steps'
 * domain losses (the mean over its graph runs, as the trainer reports it) and the accuracy over the
 * epoch's source and target images.
 */
export interface DomainScore {
  readonly loss: number;
  readonly accuracy: number;
}

export interface EvalTotals {
  readonly parts: number;
  readonly lossSum: number;
  readonly correct: number;
  readonly count: number;
}

/** Training loss/accuracy averaged over each evaluated epoch, beside its test figures (checkpoint history). */
export interface EpochHistory {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
  readonly targetLoss?: number;
  readonly targetAccuracy?: number;
  readonly domainLoss?: number;
  readonly domainAccuracy?: number;
}

interface RunRow extends Record<string, string | number | null> {
  run_id: string;
  spec: string;
  state: RunState;
  error: string | null;
  step: number;
  phase: LeaseKind;
  optimizer_step: number;
  state_step: number;
  state_optimizer_step: number;
  created_at: number;
  updated_at: number;
}

/**
 * Steps between rewrites of the full state; the update log covers the steps in between. A restart
 * replays at most this many optimizer steps (a few ms each for seed-cnn); 32 makes the rewrite's
 * 7.9 MB (seed-cnn with Adam) cost ~0.25 MB per step.
 */
export const FULL_STATE_EVERY = 32;

/** SQLite rows must stay below ~2 MB; 1 MiB chunks leave room. */
const CHUNK_BYTES = 1 << 20;

export class RunStore {
  constructor(private readonly storage: DurableObjectStorage) {}

  /** Creates or upgrades the tables (coordinator/schema.ts); call once, before anything else. */
  migrate(): void {
    migrate(this.sql);
  }

  get sql(): SqlStorage {
    return this.storage.sql;
  }

  transaction<T>(writes: () => T): T {
    return this.storage.transactionSync(writes);
  }

  /** The run kept here, or undefined before `create`; `slots`: how many optimizer slots its spec has. */
  load(slots: (spec: RunSpec) => number): StoredRun | undefined {
    const row = this.sql.exec<RunRow>('SELECT * FROM run WHERE id = 1').toArray()[0];
    if (!row) return undefined;
    let spec: RunSpec;
    try {
      spec = JSON.parse(row.spec) as RunSpec;
    } catch (e) {
      throw new Error(`run ${row.run_id}: the spec stored in its coordinator's run table is not valid JSON (${(e as Error).message})`);
    }
    return {
      record: { runId: row.run_id, spec, createdAt: row.created_at, state: row.state, error: row.error, updatedAt: row.updated_at },
      position: { step: row.step, phase: row.phase, optimizerStep: row.optimizer_step },
      stateAt: { step: row.state_step, optimizerStep: row.state_optimizer_step },
      tensors: {
        params: this.readTensor('params', spec.paramCount),
        buffers: this.readTensor('buffers', spec.bufferCount),
        slots: Array.from({ length: slots(spec) }, (_, i) => this.readTensor(`optimizer.${i}`, spec.paramCount)),
      },
    };
  }

  /** The one writer of the run row: its lifecycle state with the committed position. */
  writeRun(record: RunRecord, committed: Position): void {
    this.sql.exec(
      `INSERT INTO run (id, run_id, spec, state, error, step, phase, optimizer_step, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, error = excluded.error, step = excluded.step, phase = excluded.phase,
         optimizer_step = excluded.optimizer_step, updated_at = excluded.updated_at`,
      record.runId, JSON.stringify(record.spec), record.state, record.error, committed.step, committed.phase, committed.optimizerStep, record.createdAt, record.updatedAt,
    );
  }

  /** The full state as of `at` (the run row must exist). */
  writeTensors(t: Tensors, at: StatePoint): void {
    this.writeTensor('params', t.params);
    this.writeTensor('buffers', t.buffers);
    t.slots.forEach((slot, i) => this.writeTensor(`optimizer.${i}`, slot));
    this.sql.exec('UPDATE run SET state_step = ?, state_optimizer_step = ? WHERE id = 1', at.step, at.optimizerStep);
  }

  /**
   * After a restart: metrics of steps past the committed one are dropped (those steps are trained
   * again and recorded anew).
   */
  forgetStepsAfter(step: number): void {
    this.sql.exec('DELETE FROM step_metrics WHERE step > ?', step);
  }

  recordStep(m: StepRecord): void {
    this.sql.exec(
      'INSERT OR REPLACE INTO step_metrics (step, epoch, loss, accuracy, images, step_ms, coordinator_ms, at, workers, domain_loss, domain_correct) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)',
      m.step, m.epoch, m.loss, m.accuracy, m.images, m.stepMs, m.at, JSON.stringify(m.workers), m.domain?.loss ?? null, m.domain?.correct ?? null,
    );
  }

  /** The domain classifier over the recorded steps of epoch `epoch` (0-based, as step_metrics counts), or undefined when none carry it. */
  epochDomain(epoch: number): DomainScore | undefined {
    const t = this.sql
      .exec<{ loss: number | null; correct: number | null; images: number | null }>(
        'SELECT SUM(domain_loss * images) AS loss, SUM(domain_correct) AS correct, SUM(images) AS images FROM step_metrics WHERE epoch = ? AND domain_loss IS NOT NULL',
        epoch,
      )
      .one();
    if (!t.images || t.loss === null || t.correct === null) return undefined;
    return { loss: t.loss / t.images, accuracy: t.correct / (2 * t.images) };
  }

  /** The coordinator's own time on a step, known only once its commit is done. */
  recordCoordinatorMs(step: number, ms: number, phases: StepPhases): void {
    this.sql.exec('UPDATE step_metrics SET coordinator_ms = ?, phases = ? WHERE step = ?', ms, JSON.stringify(phases), step);
  }

  addEvalPart(step: number, shard: number, lossSum: number, correct: number, count: number, worker: string): void {
    this.sql.exec('INSERT INTO eval_parts (step, shard, loss_sum, correct, count, worker) VALUES (?, ?, ?, ?, ?, ?)', step, shard, lossSum, correct, count, worker);
  }

  hasEvalPart(step: number, shard: number): boolean {
    return this.sql.exec('SELECT 1 FROM eval_parts WHERE step = ? AND shard = ?', step, shard).toArray().length > 0;
  }

  /** The shards of an evaluation with a counted part. */
  evalShards(step: number): Set<number> {
    return new Set(this.sql.exec<{ shard: number }>('SELECT shard FROM eval_parts WHERE step = ?', step).toArray().map((r) => r.shard));
  }

  /**
   * The accuracy an evaluation part of `shards` (one domain's) is held against: the median of the
   * evaluation's parts of that domain so far (from 3), else the domain's accuracy at the last
   * evaluation; undefined before either exists. (A shifted target scores far below the source.)
   */
  evalReference(step: number, shards: ShardRange, target: boolean): number | undefined {
    const parts = this.sql
      .exec<{ a: number }>('SELECT CAST(correct AS REAL) / count AS a FROM eval_parts WHERE step = ? AND shard >= ? AND shard < ? ORDER BY a', step, shards.from, shards.to)
      .toArray();
    if (parts.length >= 3) return parts[parts.length >> 1].a;
    const column = target ? 'target_accuracy' : 'accuracy';
    return this.sql.exec<{ a: number | null }>(`SELECT ${column} AS a FROM eval_metrics ORDER BY step DESC LIMIT 1`).toArray()[0]?.a ?? undefined;
  }

  /** Forgets a worker's parts of an evaluation (it was found lying): their shards are evaluated again. */
  forgetEvalPartsOf(step: number, worker: string): void {
    this.sql.exec('DELETE FROM eval_parts WHERE step = ? AND worker = ?', step, worker);
  }

  /** The counted parts of an evaluation, of every shard or of `shards` only. */
  evalTotals(step: number, shards: ShardRange = { from: 0, to: Number.MAX_SAFE_INTEGER }): EvalTotals {
    const t = this.sql
      .exec<{ n: number; loss: number | null; correct: number | null; count: number | null }>(
        'SELECT COUNT(*) AS n, SUM(loss_sum) AS loss, SUM(correct) AS correct, SUM(count) AS count FROM eval_parts WHERE step = ? AND shard >= ? AND shard < ?',
        step,
        shards.from,
        shards.to,
      )
      .one();
    return { parts: t.n, lossSum: t.loss ?? 0, correct: t.correct ?? 0, count: t.count ?? 0 };
  }

  /** An epoch's evaluation: the source test split, the target's for a run with one, and a DANN run's domain classifier over the epoch. */
  recordEval(epoch: number, step: number, test: EvalScore, target: EvalScore | undefined, domain: DomainScore | undefined, at: number): void {
    this.sql.exec(
      'INSERT OR REPLACE INTO eval_metrics (epoch, step, loss, accuracy, target_loss, target_accuracy, domain_loss, domain_accuracy, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      epoch, step, test.loss, test.accuracy, target?.loss ?? null, target?.accuracy ?? null, domain?.loss ?? null, domain?.accuracy ?? null, at,
    );
  }

  /** Every evaluated epoch with the mean training loss and accuracy of its steps. */
  epochHistory(): EpochHistory[] {
    return this.sql
      .exec<{
        epoch: number; test_loss: number; test_accuracy: number; target_loss: number | null; target_accuracy: number | null; domain_loss: number | null; domain_accuracy: number | null;
        train_loss: number | null; train_accuracy: number | null;
      }>(
        `SELECT e.epoch, e.loss AS test_loss, e.accuracy AS test_accuracy, e.target_loss, e.target_accuracy, e.domain_loss, e.domain_accuracy, AVG(s.loss) AS train_loss, AVG(s.accuracy) AS train_accuracy
         FROM eval_metrics e LEFT JOIN step_metrics s ON s.epoch = e.epoch - 1 GROUP BY e.epoch ORDER BY e.epoch`,
      )
      .toArray()
      .map((r) => ({
        epoch: r.epoch,
        trainLoss: r.train_loss ?? NaN,
        trainAccuracy: r.train_accuracy ?? NaN,
        testLoss: r.test_loss,
        testAccuracy: r.test_accuracy,
        ...(r.target_loss !== null && r.target_accuracy !== null ? { targetLoss: r.target_loss, targetAccuracy: r.target_accuracy } : {}),
        ...(r.domain_loss !== null && r.domain_accuracy !== null ? { domainLoss: r.domain_loss, domainAccuracy: r.domain_accuracy } : {}),
      }));
  }

  /** Appends the update that produced version `update.step` to the log. */
  logUpdate(update: StepUpdate): void {
    const chunks = this.writeChunks(encodeUpdate(update), (c, part) => this.sql.exec('INSERT OR REPLACE INTO update_log (step, chunk, data) VALUES (?, ?, ?)', update.step, c, part));
    this.sql.exec('DELETE FROM update_log WHERE step = ? AND chunk >= ?', update.step, chunks);
  }

  /** The logged update that produced version `step` (its frame's checksum checked). */
  readUpdate(step: number): StepUpdate {
    const rows = this.sql.exec<{ data: ArrayBuffer }>('SELECT data FROM update_log WHERE step = ? ORDER BY chunk', step).toArray();
    if (!rows.length) throw new Error(`the update log has no entry for step ${step}`);
    const bytes = new Uint8Array(rows.reduce((n, r) => n + r.data.byteLength, 0));
    let at = 0;
    for (const r of rows) {
      bytes.set(new Uint8Array(r.data), at);
      at += r.data.byteLength;
    }
    const update = decodeUpdate(bytes);
    if (update.step !== step) throw new Error(`update log entry ${step} holds step ${update.step}`);
    return update;
  }

  /** Drops the log's entries for steps ≤ `step` (the full state now covers them). */
  forgetUpdatesThrough(step: number): void {
    this.sql.exec('DELETE FROM update_log WHERE step <= ?', step);
  }

  /** Writes `bytes` as rows below SQLite's row limit; returns how many. */
  private writeChunks(bytes: Uint8Array, write: (chunk: number, part: ArrayBuffer) => void): number {
    const chunks = Math.ceil(bytes.byteLength / CHUNK_BYTES);
    for (let c = 0; c < chunks; c++) write(c, bytes.slice(c * CHUNK_BYTES, Math.min(bytes.byteLength, (c + 1) * CHUNK_BYTES)).buffer);
    return chunks;
  }

  private writeTensor(name: string, data: Float32Array): void {
    const chunks = this.writeChunks(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), (c, part) =>
      this.sql.exec('INSERT OR REPLACE INTO tensors (name, chunk, data) VALUES (?, ?, ?)', name, c, part),
    );
    this.sql.exec('DELETE FROM tensors WHERE name = ? AND chunk >= ?', name, chunks);
  }

  private readTensor(name: string, length: number): Float32Array {
    const out = new Float32Array(length);
    const bytes = new Uint8Array(out.buffer);
    let at = 0;
    for (const row of this.sql.exec<{ data: ArrayBuffer }>('SELECT data FROM tensors WHERE name = ? ORDER BY chunk', name)) {
      bytes.set(new Uint8Array(row.data), at);
      at += row.data.byteLength;
    }
    if (at !== bytes.byteLength) throw new Error(`stored tensor ${name}: ${at} bytes, expected ${bytes.byteLength}`);
    return out;
  }
}
