// The coordinator's SQLite tables, created by numbered migrations recorded in `migrations`.
import type { SqlStorage } from '@cloudflare/workers-types/index';

const MIGRATIONS: readonly (readonly string[])[] = [
  [
    `CREATE TABLE run (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      run_id TEXT NOT NULL,
      spec TEXT NOT NULL,
      state TEXT NOT NULL,
      error TEXT,
      step INTEGER NOT NULL,
      phase TEXT NOT NULL,
      optimizer_step INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    )`,
    // Parameters, buffers and optimizer slots, in chunks below SQLite's row limit.
    `CREATE TABLE tensors (name TEXT NOT NULL, chunk INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (name, chunk))`,
    `CREATE TABLE leases (
      lease_id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      step INTEGER NOT NULL,
      shard INTEGER NOT NULL,
      worker TEXT NOT NULL,
      issued_at INTEGER NOT NULL,
      deadline INTEGER NOT NULL,
      state TEXT NOT NULL
    )`,
    `CREATE INDEX leases_by_shard ON leases (kind, step, shard)`,
    `CREATE TABLE step_metrics (
      step INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, loss REAL NOT NULL, accuracy REAL NOT NULL, images INTEGER NOT NULL,
      step_ms REAL NOT NULL, coordinator_ms REAL NOT NULL, at INTEGER NOT NULL
    )`,
    `CREATE TABLE eval_parts (step INTEGER NOT NULL, shard INTEGER NOT NULL, loss_sum REAL NOT NULL, correct INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (step, shard))`,
    `CREATE TABLE eval_metrics (epoch INTEGER PRIMARY KEY, step INTEGER NOT NULL, loss REAL NOT NULL, accuracy REAL NOT NULL, at INTEGER NOT NULL)`,
    `CREATE TABLE workers (worker TEXT PRIMARY KEY, last_seen INTEGER NOT NULL, accepted INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0)`,
  ],
  [
    // Consecutive bad submissions, and the exclusion they lead to.
    `ALTER TABLE workers ADD COLUMN bad_streak INTEGER NOT NULL DEFAULT 0`,
    `ALTER TABLE workers ADD COLUMN excluded_at INTEGER`,
    `ALTER TABLE workers ADD COLUMN excluded_reason TEXT`,
  ],
  [
    // Which workers' answers each step counted: JSON {workerId: shards}; NULL for steps before this.
    `ALTER TABLE step_metrics ADD COLUMN workers TEXT`,
  ],
  [
    // The step (and optimizer step) of the full state in \`tensors\`: the committed step may be ahead of
    // it, the steps between replayed from the update log in R2.
    `ALTER TABLE run ADD COLUMN state_step INTEGER`,
    `ALTER TABLE run ADD COLUMN state_optimizer_step INTEGER`,
    `UPDATE run SET state_step = step, state_optimizer_step = optimizer_step`,
    // Where the coordinator's time on a step went: JSON StepPhases; NULL for steps before this.
    `ALTER TABLE step_metrics ADD COLUMN phases TEXT`,
    // The update log: each step's mean gradient and statistics since the full state (an update frame, in chunks).
    `CREATE TABLE update_log (step INTEGER NOT NULL, chunk INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (step, chunk))`,
  ],
  [
    // The supervised fleet (fleet.ts): each chain's current generation, the delivery that claimed it
    // (message id/attempts/nonce), when its message is due, and how often it was started again.
    `CREATE TABLE chains (
      chain TEXT PRIMARY KEY, generation INTEGER NOT NULL, invocation TEXT, due_at INTEGER NOT NULL, claimed_at INTEGER,
      restarts INTEGER NOT NULL DEFAULT 0
    )`,
  ],
  [
    // Minted worker identities (identities.ts): when each expires. NULL: a chain's row, or a
    // self-named worker's from before identities were minted (refused from now on, kept for the record).
    `ALTER TABLE workers ADD COLUMN expires_at INTEGER`,
  ],
  [
    // Who answered each evaluation part: a worker found lying by verification loses its parts.
    `ALTER TABLE eval_parts ADD COLUMN worker TEXT`,
  ],
  [
    // Runs with a target domain (RunSpec.targetDataset): each epoch's loss and accuracy on the
    // target's test split, beside the source's; NULL for runs without one and rows before this.
    `ALTER TABLE eval_metrics ADD COLUMN target_loss REAL`,
    `ALTER TABLE eval_metrics ADD COLUMN target_accuracy REAL`,
  ],
  [
    // DANN runs: each step's domain classifier loss (mean over its shards) and correct count (of its
    // 2 × images source and target images), and each epoch's loss and accuracy over its steps; NULL for
    // other runs and rows before this.
    `ALTER TABLE step_metrics ADD COLUMN domain_loss REAL`,
    `ALTER TABLE step_metrics ADD COLUMN domain_correct INTEGER`,
    `ALTER TABLE eval_metrics ADD COLUMN domain_loss REAL`,
    `ALTER TABLE eval_metrics ADD COLUMN domain_accuracy REAL`,
  ],
];

export function migrate(sql: SqlStorage): void {
  sql.exec('CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied = sql.exec<{ v: number }>('SELECT COALESCE(MAX(version), 0) AS v FROM migrations').one().v;
  MIGRATIONS.slice(applied).forEach((statements, i) => {
    for (const statement of statements) sql.exec(statement);
    sql.exec('INSERT INTO migrations (version, applied_at) VALUES (?, ?)', applied + i + 1, Date.now());
  });
}
