// DiLoCo's degenerate case: one inner step of plain SGD per round, outer SGD with lr 1 and no momentum,
// is synchronous SGD over the same shards (the mean of the shards' deltas η·g_s is η times the mean
// gradient; the mean of the shards' blended buffers is the blend of the mean statistics). The two
// trainers share no update code on that path, so a wrong round (a dropped shard, a shifted inner
// step, a stale schedule step) shows here. Also: how a DiLoCo run's leases and steps are laid out.
import { describe, expect, it } from 'vitest';
import { ShardPlan } from '../../coordinator/shard-plan';
import { assembleCifar10 } from '../../shared/data/cifar';
import { trainingLayout } from '../../shared/models/compile';
import { initBuffers, initParameters } from '../../shared/models/params';
import type { RunSpec } from '../../shared/protocol';
import { DEFAULT_COMPRESSION, type DilocoConfig } from '../../shared/training/communication';
import type { TrainConfig } from '../../shared/training/config';
import { RunPlan } from '../../shared/training/plan';
import { train } from '../../shared/training/trainer';
import { webOrt } from '../support/ort';
import { fixtureFiles } from '../support/cifar-fixture';
import { worstTensorError } from '../support/compare';
import { tinyTrainConfig } from '../support/tiny-run';

const data = assembleCifar10(fixtureFiles(100), 'fixture');
const SGD = { kind: 'sgd', lr: 0.05, momentum: 0, nesterov: false, weightDecay: 5e-4 } as const;
const ONE_STEP_ROUNDS: DilocoConfig = { innerSteps: 1, outerLr: 1, outerMomentum: 0, outerNesterov: false };
/** Both sides sum the same float32 shard results in different orders (and DiLoCo subtracts): rounding only. */
const ROUNDING = 1e-4;

describe('DiLoCo with one inner SGD step per round equals synchronous SGD', () => {
  for (const preset of ['seed-cnn', 'bn-cnn'] as const) {
    it(`${preset}: parameters${preset === 'bn-cnn' ? ' and batch-norm running statistics' : ''} after every step`, async () => {
      const base = tinyTrainConfig(96);
      const config: TrainConfig = { ...base, model: { ...base.model, preset }, optimizer: SGD, batch: 48, epochs: 1 };
      const microBatch = 16;
      const layout = trainingLayout(config.model);
      const run = async (diloco?: DilocoConfig) => {
        const steps: Float32Array[] = [];
        const state = await train({
          ort: await webOrt(),
          data,
          config,
          ghostBatch: microBatch,
          ...(diloco ? { communication: { compression: DEFAULT_COMPRESSION, diloco } } : {}),
          onStep: (p) => steps.push(p.params.slice()),
        });
        return { steps, buffers: state.buffers };
      };
      const sync = await run();
      const local = await run(ONE_STEP_ROUNDS);
      expect(local.steps).toHaveLength(sync.steps.length);
      const start = initParameters(layout.params, config.seed);
      for (const [i, p] of local.steps.entries()) {
        const e = worstTensorError(p, sync.steps[i], start, layout.params);
        expect(e.error, `step ${i + 1}: ${e.tensor}`).toBeLessThanOrEqual(ROUNDING);
      }
      if (layout.buffers.length) {
        const e = worstTensorError(local.buffers, sync.buffers, initBuffers(layout.buffers), layout.buffers);
        expect(e.error, e.tensor).toBeLessThanOrEqual(ROUNDING);
      }
    }, 120_000);
  }
});

describe("a DiLoCo run's leases", () => {
  const config: TrainConfig = { ...tinyTrainConfig(192), batch: 32, epochs: 2 };
  const spec = (innerSteps: number): RunSpec => ({
    runId: 'r',
    config: { train: config, cluster: { microBatch: 16, aggregators: 0, diloco: { innerSteps } } } as unknown as RunSpec['config'],
    dataset: { train: { count: 192 }, test: { count: 100 } } as unknown as RunSpec['dataset'],
    paramCount: 1,
    bufferCount: 0,
  });

  it('count rounds that stop at epoch ends, each lease the concatenation of its inner steps’ shards', () => {
    const shards = new ShardPlan(spec(4)); // 6 steps per epoch: rounds of 4 and 2
    const plan = new RunPlan(config, 192);
    expect([shards.stepsPerEpoch, shards.totalSteps]).toEqual([2, 4]);
    expect([0, 1, 2, 3].map((r) => shards.globalSteps(r))).toEqual([
      { first: 0, count: 4 },
      { first: 4, count: 2 },
      { first: 6, count: 4 },
      { first: 10, count: 2 },
    ]);
    expect([0, 1, 2, 3, 4].map((r) => shards.globalStepAfter(r))).toEqual([0, 4, 6, 10, 12]);
    expect([shards.endsEpoch(2), shards.endsEpoch(3), shards.examplesPerLease('train'), shards.trainExamples(1)]).toEqual([true, false, 64, 32]);
    const lease = shards.lease('train', { leaseId: 'l', step: 3, shard: 1, deadline: 0, paramsTag: 't' });
    const inner = [10, 11].map((step) => plan.examples(step, 16, 16));
    expect(lease).toMatchObject({ step: 3, version: 3, epoch: 1, firstPosition: inner[0].firstPosition, inner: { first: 10, count: 2, positions: inner.map((s) => s.firstPosition) } });
    expect(lease.indices).toEqual(inner.flatMap((s) => [...s.indices]));
    expect(shards.lease('eval', { leaseId: 'e', step: 2, shard: 0, deadline: 0, paramsTag: 't' }).epoch).toBe(0);
  });

  it('without DiLoCo, a step is a global step and leases carry no inner steps', () => {
    const shards = new ShardPlan(spec(0));
    expect([shards.stepsPerEpoch, shards.totalSteps, shards.globalStepAfter(5), shards.examplesPerLease('train')]).toEqual([6, 12, 5, 16]);
    expect(shards.lease('train', { leaseId: 'l', step: 1, shard: 0, deadline: 0, paramsTag: 't' }).inner).toBeUndefined();
  });
});
