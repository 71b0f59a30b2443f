// One gradient-worker isolate with the Workers defaults stays within the 100 MiB budget (wrangler.toml
// WORKER_MEMORY_MB; Workers allow 128 MB per isolate): the real queue consumer in its own workerd,
// measured through the V8 inspector over train leases and an eval pass (bench/isolate-memory.ts).
import { describe, expect, it } from 'vitest';
import { measureWorkerMemory } from '../../bench/isolate-memory';

const BUDGET_MIB = 100;

describe('gradient-worker isolate memory with the Workers defaults', () => {
  for (const [preset, head] of [['seed-cnn', 'align'], ['res-cnn', 'linear']] as const) {
    it(`${preset}: wasm heap + JS heap + array buffers peak at most ${BUDGET_MIB} MiB`, async () => {
      const r = await measureWorkerMemory({ preset, head, defaults: 'workers', trainSteps: 1, testImages: 500, timeoutMs: 60_000 });
      // The measurement saw the whole loop: both train leases and the eval lease, and the wasm heap of a graph.
      expect(r.leases).toBe(3);
      expect(r.wasmMiB).toBeGreaterThan(16);
      expect(r.worker.samples).toBeGreaterThan(5);
      expect(r.peakMiB, JSON.stringify(r)).toBeLessThanOrEqual(BUDGET_MIB);
    }, 80_000);
  }
});
