// `npm run bench -- commit [--steps N]`: what per-step durability costs the coordinator. Every step
// writes its update-log entry (the mean gradient, 4 bytes per parameter) and the run row in one
// transaction; every 32nd step also rewrites the full state (parameters and Adam's two moments, 12
// bytes per parameter), which is what every step wrote before the log. Both are read from the same
// run's step metrics (`phases.commitMs`), so they share one machine state. Then the coordinator
// process is restarted on its persisted state and the first request after it is timed: loading the
// full state and replaying the log. One JSON object per line. No compute: hand-made gradient frames.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCoordinator, type LocalCoordinator } from '../cli/cluster/local';
import { FULL_STATE_EVERY } from '../coordinator/run-store';
import { prepareDataset } from '../cli/prepare';
import type { RunRequest } from '../shared/protocol';
import { median } from '../shared/stats';
import { encodeGradient } from '../shared/wire';
import { ApiClient } from '../workers/gradient/client';
import { blankData } from './synthetic-data';


const RUN: RunRequest = { dataset: 'bench', batch: 2, evalBatch: 100, epochs: 1, optimizer: { kind: 'adam', lr: 1e-3 }, cluster: { microBatch: 2, leaseMs: 60_000 } };

async function timeFirstRequest(api: ApiClient, runId: string): Promise<number> {
  const t0 = performance.now();
  await api.status(runId);
  return performance.now() - t0;
}

export async function benchCommit(args: string[], print: (o: object) => void): Promise<void> {
  const stepsArg = args.indexOf('--steps');
  const steps = stepsArg >= 0 ? Number(args[stepsArg + 1]) : 2 * FULL_STATE_EVERY + 8;
  const dir = mkdtempSync(join(tmpdir(), 'edgetrain-bench-commit-'));
  const token = `bench-${crypto.randomUUID()}`;
  let coordinator: LocalCoordinator = await startCoordinator({ persistDir: dir, token });
  try {
    let api = new ApiClient(coordinator.url, { token });
    const images = Math.max(400, 2 * steps);
    await prepareDataset(api, blankData(images, images), 'bench', 5000);
    const { runId } = await api.createRun(RUN);
    const spec = await api.spec(runId);
    const grads = Float32Array.from({ length: spec.paramCount }, (_, i) => Math.sin(i) * 1e-3);
    for (let k = 0; k < steps; k++) {
      const reply = await api.lease(runId);
      if (reply.type !== 'lease') throw new Error(`step ${k}: expected a lease, got ${JSON.stringify(reply)}`);
      const l = reply.lease;
      const frame = encodeGradient({ leaseId: l.leaseId, version: l.version, step: l.step, shard: l.shard, count: l.indices.length, loss: 1, correct: 0, grads, stats: new Float32Array(spec.bufferCount) });
      await api.submitGradient(l, frame);
    }
    const metrics = (await api.metrics(runId)).steps.slice(2);
    const commitMs = (full: boolean) => median(metrics.filter((s) => (s.step % FULL_STATE_EVERY === 0) === full).map((s) => s.phases?.commitMs ?? NaN));
    const slots = 2;
    print({ bench: 'commit', what: 'log entry + run row (every step now)', bytes: 4 * spec.paramCount, medianMs: +commitMs(false).toFixed(2), steps: metrics.filter((s) => s.step % FULL_STATE_EVERY !== 0).length });
    print({ bench: 'commit', what: `full state (every ${FULL_STATE_EVERY} steps now; every step before)`, bytes: 4 * spec.paramCount * (1 + slots), medianMs: +commitMs(true).toFixed(2), steps: metrics.filter((s) => s.step % FULL_STATE_EVERY === 0).length });

    // Restart on the persisted state: the first request waits for the full state to load and the log to replay.
    const logged = steps % FULL_STATE_EVERY;
    await coordinator.dispose();
    coordinator = await startCoordinator({ persistDir: dir, token });
    api = new ApiClient(coordinator.url, { token });
    const firstMs = await timeFirstRequest(api, runId);
    const warmMs = median(await Promise.all([0, 1, 2].map(() => timeFirstRequest(api, runId))));
    print({ bench: 'commit', what: 'restart: load the full state and replay the log', loggedSteps: logged, firstRequestMs: +firstMs.toFixed(1), warmRequestMs: +warmMs.toFixed(1) });
  } finally {
    await coordinator.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
