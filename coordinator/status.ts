// Read models of a run: its status (with throughput and ETA) and its metric series.
import type { SqlStorage } from '@cloudflare/workers-types/index';
import { FINAL_STATES, type EvalMetric, type RunStatus, type StepMetric, type StepPhases, type WorkerSummary } from '../shared/protocol';
import type { Position, RunRecord } from './run-store';
import type { ShardPlan } from './shard-plan';

/** Steps whose timing estimates throughput and ETA. */
const RATE_WINDOW = 50;

export function stepMetrics(sql: SqlStorage, sinceStep: number, limit = 10_000): StepMetric[] {
  return sql
    .exec<Record<string, number | string | null>>('SELECT * FROM step_metrics WHERE step > ? ORDER BY step LIMIT ?', sinceStep, limit)
    .toArray()
    .map((r) => {
      const workers = contributions(r.workers);
      const phases = typeof r.phases === 'string' ? (JSON.parse(r.phases) as StepPhases) : undefined;
      return {
        step: r.step as number,
        epoch: r.epoch as number,
        loss: r.loss as number,
        accuracy: r.accuracy as number,
        images: r.images as number,
        stepMs: r.step_ms as number,
        coordinatorMs: r.coordinator_ms as number,
        at: r.at as number,
        ...(workers ? { workers } : {}),
        ...(phases ? { phases } : {}),
        ...(typeof r.domain_loss === 'number' && typeof r.domain_correct === 'number' ? { domainLoss: r.domain_loss, domainAccuracy: r.domain_correct / (2 * (r.images as number)) } : {}),
      };
    });
}

/** The step_metrics.workers column ({workerId: shards} as JSON); absent (NULL, rows from before migration 3) → undefined. */
function contributions(column: number | string | null | undefined): Record<string, number> | undefined {
  if (typeof column !== 'string') return undefined;
  try {
    const parsed: unknown = JSON.parse(column);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, number>) : undefined;
  } catch {
    return undefined;
  }
}

export function evalMetrics(sql: SqlStorage): EvalMetric[] {
  return sql
    .exec<Record<string, number | null>>('SELECT * FROM eval_metrics ORDER BY epoch')
    .toArray()
    .map((r) => ({
      epoch: r.epoch!,
      step: r.step!,
      loss: r.loss!,
      accuracy: r.accuracy!,
      ...(r.target_loss !== null && r.target_accuracy !== null ? { targetLoss: r.target_loss!, targetAccuracy: r.target_accuracy! } : {}),
      ...(typeof r.domain_loss === 'number' && typeof r.domain_accuracy === 'number' ? { domainLoss: r.domain_loss, domainAccuracy: r.domain_accuracy } : {}),
      at: r.at!,
    }));
}

/** `position`: the live one (ahead of the committed one between commits). */
export function runStatus(sql: SqlStorage, record: RunRecord, position: Position, shards: ShardPlan, workers: readonly WorkerSummary[]): RunStatus {
  const { spec } = record;
  const recent = sql.exec<Record<string, number>>('SELECT step, loss, accuracy, images, at FROM step_metrics ORDER BY step DESC LIMIT ?', RATE_WINDOW).toArray();
  const last = recent[0];
  const lastEval = sql.exec<Record<string, number | null>>('SELECT loss, accuracy, target_loss, target_accuracy, domain_loss, domain_accuracy FROM eval_metrics ORDER BY epoch DESC LIMIT 1').toArray()[0];
  let imagesPerSecond: number | null = null;
  let etaSeconds: number | null = null;
  if (recent.length >= 2) {
    const first = recent[recent.length - 1];
    const seconds = (last.at - first.at) / 1000;
    if (seconds > 0) {
      const steps = last.step - first.step;
      // The images of the steps after the window's first (a DiLoCo round's are its inner steps' batches).
      const images = recent.slice(0, -1).reduce((n, r) => n + r.images, 0);
      imagesPerSecond = images / seconds;
      // Evaluation time is inside the window whenever an epoch ended in it.
      etaSeconds = ((shards.totalSteps - position.step) * seconds) / steps;
    }
  }
  const final = FINAL_STATES.includes(record.state);
  return {
    runId: record.runId,
    state: record.state,
    ...(record.error ? { error: record.error } : {}),
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    step: position.step,
    totalSteps: shards.totalSteps,
    epoch: shards.epochsDone(position.step, position.phase),
    epochs: spec.config.train.epochs,
    version: position.step,
    phase: position.phase,
    loss: last?.loss ?? null,
    trainAccuracy: last?.accuracy ?? null,
    testLoss: lastEval?.loss ?? null,
    testAccuracy: lastEval?.accuracy ?? null,
    ...(spec.targetDataset ? { targetLoss: lastEval?.target_loss ?? null, targetAccuracy: lastEval?.target_accuracy ?? null } : {}),
    ...(spec.config.train.model.dann ? { domainLoss: lastEval?.domain_loss ?? null, domainAccuracy: lastEval?.domain_accuracy ?? null } : {}),
    imagesPerSecond: final ? null : imagesPerSecond,
    activeWorkers: final ? 0 : workers.filter((w) => w.active).length,
    etaSeconds: final ? 0 : etaSeconds,
    config: spec.config,
    workers,
  };
}
