// The worker-memory estimate counts what the communication settings keep per parameter (DiLoCo's inner
// loop, error feedback), and a run that no longer fits is refused naming them.
import { describe, expect, it } from 'vitest';
import { WORKERS_CACHES, estimateWorkerMemory, memoryIssue, withWorkersGraphBatch } from '../../shared/memory-budget';
import { resolveRunConfig, runRequestSchema, type RunRequest } from '../../shared/protocol';

const config = (req: RunRequest) => withWorkersGraphBatch(resolveRunConfig(runRequestSchema.parse(req)));
const SEED = { model: { preset: 'seed-cnn', head: 'align' } } as const;
const RES = { model: { preset: 'res-cnn', head: 'linear' } } as const;
const DILOCO_INT8 = { diloco: { innerSteps: 8 }, compression: { gradients: 'int8', params: 'int8', errorFeedback: true } } as const;
const SEED_PARAMS = 658_753;

describe('worker memory with communication settings', () => {
  it('adds nothing for synchronous fp32, 12 bytes a parameter for error feedback, 8 + 8 more for a DiLoCo lease with AdamW', () => {
    const plain = estimateWorkerMemory(config(SEED), WORKERS_CACHES, 5000);
    expect(plain.communicationMiB).toBe(0);
    const feedback = estimateWorkerMemory(config({ ...SEED, cluster: { compression: { gradients: 'int8', errorFeedback: true } } }), WORKERS_CACHES, 5000);
    expect(feedback.communicationMiB).toBeCloseTo((12 * SEED_PARAMS) / 2 ** 20, 1);
    // Without error feedback an int8 answer keeps no residual.
    expect(estimateWorkerMemory(config({ ...SEED, cluster: { compression: { gradients: 'int8' } } }), WORKERS_CACHES, 5000).communicationMiB).toBe(0);
    const both = estimateWorkerMemory(config({ ...SEED, optimizer: { kind: 'adamw' }, cluster: DILOCO_INT8 }), WORKERS_CACHES, 5000);
    expect(both.communicationMiB).toBeCloseTo((28 * SEED_PARAMS) / 2 ** 20, 1);
    expect(both.totalMiB - plain.totalMiB).toBeCloseTo(both.communicationMiB, 0);
  });

  it('refuses a run that fits only without them, naming DiLoCo and the MiB it keeps', () => {
    const budget = 100;
    expect(memoryIssue(config(RES), WORKERS_CACHES, 5000, budget)).toBeUndefined();
    const issue = memoryIssue(config({ ...RES, optimizer: { kind: 'adamw' }, cluster: DILOCO_INT8 }), WORKERS_CACHES, 5000, budget);
    expect(issue?.issues[0]).toMatchObject({ path: 'cluster.diloco.innerSteps', message: expect.stringMatching(/^DiLoCo's inner loop and error feedback keep about [\d.]+ MiB per worker of res-cnn; without them the run needs about [\d.]+ MiB$/) });
  });
});
