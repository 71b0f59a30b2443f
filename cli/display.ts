// How runs look on a terminal: the progress line (start, run --watch, status), the run list and the
// metric log lines.
import type { EvalMetric, RunStatus, RunSummary, StepMetric } from '../shared/protocol';
import { communicationOf } from '../shared/training/communication';

export const pct = (x: number | null | undefined) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(2)}%`);

export const duration = (s: number | null) =>
  s === null ? '—' : s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 90 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;

/** Local date and time, to the second: 2026-07-02 14:03:09. */
export function timestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** What a run's steps are: DiLoCo runs count rounds of H inner steps. */
export const stepWord = (s: { config: RunStatus['config'] }): string => (communicationOf(s.config.cluster).diloco.innerSteps > 0 ? 'round' : 'step');

/** A DANN run's domain classifier: `domain loss 0.69 acc 52.1%` (a dash for a figure not yet known). */
export const domainFigures = (loss: number | null | undefined, accuracy: number | null | undefined): string =>
  `domain loss ${loss === null || loss === undefined ? '—' : loss.toFixed(2)} acc ${accuracy === null || accuracy === undefined ? '—' : `${(100 * accuracy).toFixed(1)}%`}`;

/** One line: state, epoch/step, loss, train/test accuracy (target, domain classifier), images/s, workers, ETA. */
export function progressLine(s: RunStatus): string {
  const epoch = Math.max(1, Math.min(s.epoch + 1, s.epochs));
  return `${s.state} · epoch ${epoch}/${s.epochs} · ${stepWord(s)} ${s.step}/${s.totalSteps}${s.phase === 'eval' && s.state === 'training' ? ' (evaluating)' : ''} · loss ${s.loss?.toFixed(4) ?? '—'} · train ${pct(s.trainAccuracy)} · test ${pct(s.testAccuracy)}${s.targetAccuracy !== undefined ? ` · target ${pct(s.targetAccuracy)}` : ''}${s.domainAccuracy !== undefined ? ` · ${domainFigures(s.domainLoss, s.domainAccuracy)}` : ''} · ${s.imagesPerSecond?.toFixed(0) ?? '—'} img/s · ${s.activeWorkers} workers · ETA ${s.state === 'training' || s.state === 'created' ? duration(s.etaSeconds) : '—'}`;
}

/** What changes between two progress lines worth a new line when not on a terminal. */
export const progressKey = (s: RunStatus) => `${s.state}|${s.step}|${s.phase}|${s.epoch}|${s.activeWorkers}|${s.error ?? ''}`;

export const modelName = (s: { config: RunStatus['config'] }) => {
  const m = s.config.train.model;
  return `${m.preset}/${m.head}${m.dann ? '+dann' : ''}`;
};

/** The run's shape in one phrase: model, epochs, steps, batch, shards, dataset. */
export function runShape(s: RunStatus): string {
  const c = s.config;
  const { innerSteps } = communicationOf(c.cluster).diloco;
  const steps = innerSteps > 0 ? `rounds (DiLoCo, up to ${innerSteps} inner steps each)` : 'steps';
  return `${modelName(s)}, ${c.train.epochs} epoch(s) of ${s.totalSteps / c.train.epochs} ${steps}, global batch ${c.train.batch} in shards of ${c.cluster.microBatch}, dataset ${c.dataset}${c.targetDataset ? `, target ${c.targetDataset}` : ''}`;
}

/** The status of one run: a header, the progress line, the error if any. */
export function statusBlock(s: RunStatus): string {
  const lines = [`run ${s.runId} (${runShape(s)}; created ${timestamp(s.createdAt)})`, `  ${progressLine(s)}`];
  if (s.error) lines.push(`  error: ${s.error}`);
  return lines.join('\n');
}

/** The run list as a table, newest first. */
export function runsTable(runs: readonly Partial<RunSummary>[]): string {
  const rows = runs.map((r) => [r.runId ?? '?', r.state ?? '?', r.createdAt ? timestamp(r.createdAt) : '—', r.preset ? `${r.preset}/${r.head ?? '?'}` : '—']);
  const all = [['RUN', 'STATE', 'CREATED', 'MODEL'], ...rows];
  const widths = all[0].map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}

export const stepLine = (m: StepMetric) =>
  `step ${String(m.step).padStart(5)}  epoch ${m.epoch + 1}  loss ${m.loss.toFixed(4)}  accuracy ${pct(m.accuracy).padStart(7)}  ${String(Math.round(m.stepMs)).padStart(6)} ms` +
  (m.domainAccuracy !== undefined ? `  ${domainFigures(m.domainLoss, m.domainAccuracy)}` : '');

export const evalLine = (e: EvalMetric) =>
  `eval  epoch ${e.epoch} (after step ${e.step})  test loss ${e.loss.toFixed(4)}  test accuracy ${pct(e.accuracy)}` +
  (e.targetAccuracy !== undefined ? `  target loss ${e.targetLoss!.toFixed(4)}  target accuracy ${pct(e.targetAccuracy)}` : '') +
  (e.domainAccuracy !== undefined ? `  ${domainFigures(e.domainLoss, e.domainAccuracy)}` : '');

/** Steps and evaluations in the order they happened (an epoch's evaluation after its last step). */
export function metricLines(steps: readonly StepMetric[], evals: readonly EvalMetric[]): { line: string; json: unknown }[] {
  const events = [...steps.map((m) => ({ at: m.step, order: 0, line: stepLine(m), json: { type: 'step', ...m } })), ...evals.map((e) => ({ at: e.step, order: 1, line: evalLine(e), json: { type: 'eval', ...e } }))];
  return events.sort((a, b) => a.at - b.at || a.order - b.order).map(({ line, json }) => ({ line, json }));
}
