// Following a run until it ends: the progress line refreshed in place on a terminal, otherwise a line
// whenever something worth a line changes. A short outage of the API (a restarting coordinator, a
// dropped connection) is waited out; a lasting one ends the watch with the error.
import type { RunState, RunStatus } from '../shared/protocol';
import { ApiError, type ApiClient } from '../workers/gradient/client';
import { EXIT, networkReason } from './errors';
import { progressKey, progressLine } from './display';

export interface WatchOptions {
  /** Refresh one line in place (a terminal) instead of printing lines. */
  readonly live: boolean;
  /** Raw output for the live line. */
  readonly write: (s: string) => void;
  /** A line of output when not live. */
  readonly line: (s: string) => void;
  /** When a new line is due when not live (default: state, step, phase, epoch or workers changed). */
  readonly changeKey?: (s: RunStatus) => string;
  /** Also print a line when nothing changed for this long (default 30 s), when not live. */
  readonly quietMs?: number;
  readonly intervalMs?: number;
  /** How long the API may stay unreachable mid-watch before giving up (default 60 s). */
  readonly outageMs?: number;
  /** Called with every status read. */
  readonly onStatus?: (s: RunStatus) => void;
}

/** The states a run does not leave on its own (shared/protocol's FINAL_STATES, without loading the schemas). */
export const FINAL_STATES: readonly RunState[] = ['completed', 'failed', 'cancelled'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const transient = (e: unknown) => networkReason(e) !== undefined || (e instanceof ApiError && [429, 502, 503, 504].includes(e.status));

export async function watchRun(api: ApiClient, runId: string, opts: WatchOptions): Promise<RunStatus> {
  const key = opts.changeKey ?? progressKey;
  const quietMs = opts.quietMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 1000;
  let lastKey: string | undefined;
  let lastLine = 0;
  let failingSince: number | undefined;
  let seen = false;
  for (;;) {
    let s: RunStatus;
    try {
      s = await api.status(runId);
      failingSince = undefined;
      seen = true;
    } catch (e) {
      failingSince ??= Date.now();
      if (!seen || !transient(e) || Date.now() - failingSince > (opts.outageMs ?? 60_000)) {
        if (opts.live && seen) opts.write('\n');
        throw e;
      }
      await sleep(Math.min(2000, intervalMs * 2));
      continue;
    }
    opts.onStatus?.(s);
    const done = FINAL_STATES.includes(s.state);
    if (opts.live) opts.write(`\r\x1b[K${progressLine(s)}${done ? '\n' : ''}`);
    else if (key(s) !== lastKey || Date.now() - lastLine > quietMs || done) {
      if (key(s) !== lastKey || !done) opts.line(progressLine(s));
      lastKey = key(s);
      lastLine = Date.now();
    }
    if (done) return s;
    await sleep(intervalMs);
  }
}

/** The exit code of a run that ended: 0 completed, 1 failed, 3 cancelled. */
export const exitCodeOf = (s: RunStatus): number => (s.state === 'completed' ? EXIT.ok : s.state === 'cancelled' ? EXIT.cancelled : EXIT.failed);

/** The last line after a watch: how the run ended. */
export function endLine(s: RunStatus): string {
  const percent = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(2)}%`);
  const target = s.targetAccuracy !== undefined ? `, target accuracy ${percent(s.targetAccuracy)}` : '';
  if (s.state === 'completed') return `run ${s.runId} completed: test accuracy ${percent(s.testAccuracy)}${target} after ${s.step} steps`;
  if (s.state === 'failed') return `run ${s.runId} failed at step ${s.step}: ${s.error ?? 'no reason given'}`;
  return `run ${s.runId} cancelled at step ${s.step}: \`edgetrain resume ${s.runId}\` continues it`;
}
