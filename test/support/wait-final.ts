// Polls a run's status until it reaches a final state (completed, failed, cancelled).
import { FINAL_STATES, type RunStatus } from '../../shared/protocol';
import type { ApiClient } from '../../workers/gradient/client';

export async function waitFinal(api: ApiClient, runId: string, timeoutMs = 150_000): Promise<RunStatus> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await api.status(runId);
    if (FINAL_STATES.includes(s.state)) return s;
    if (Date.now() > until) throw new Error(`run ${runId} did not finish in ${timeoutMs} ms: ${JSON.stringify({ state: s.state, step: s.step })}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
