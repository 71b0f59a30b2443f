// Communication modes (ClusterConfig.compression and .diloco) in the scaling model: each mode's frame
// bytes from the codecs' own sizes (shared/training/communication.ts), its sync rounds per epoch, and
// its time per step through simulate(). A DiLoCo round is one lease of H inner steps per shard and
// one sync, so its step time is the round's time ÷ H.
import { DEFAULT_COMPRESSION, RoundPlan, gradientFrameBytes, paramsFrameBytes, type CompressionConfig } from '../shared/training/communication';
import { trainingLayout } from '../shared/models/compile';
import { flatLayout } from '../shared/models/params';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../shared/models/presets';
import { simulate, type Costs, type RunShape } from './model';

export interface CommunicationMode {
  readonly name: string;
  readonly compression: CompressionConfig;
  /** DiLoCo's inner steps per round (H); 0: synchronous SGD, one sync per step. */
  readonly innerSteps: number;
}

const mode = (name: string, innerSteps: number, c: Partial<CompressionConfig>): CommunicationMode => ({ name, innerSteps, compression: { ...DEFAULT_COMPRESSION, ...c } });

export const COMMUNICATION_MODES: readonly CommunicationMode[] = [
  mode('fp32', 0, {}),
  mode('fp16', 0, { gradients: 'fp16', params: 'fp16' }),
  mode('int8+ef', 0, { gradients: 'int8', params: 'int8', errorFeedback: true }),
  mode('topk1%+ef/int8-params', 0, { gradients: 'topk', topK: 0.01, params: 'int8', errorFeedback: true }),
  mode('diloco8-fp32', 8, {}),
  mode('diloco32-fp32', 32, {}),
  mode('diloco8-int8+ef', 8, { gradients: 'int8', params: 'int8', errorFeedback: true }),
  mode('diloco32-int8+ef', 32, { gradients: 'int8', params: 'int8', errorFeedback: true }),
];

/** A data-parallel run's shape: images per epoch, global batch, lease (micro-batch), workers. */
export interface CommunicationRun {
  readonly model: ModelConfig;
  readonly trainImages: number;
  readonly batch: number;
  readonly microBatch: number;
  readonly workers: number;
}

/** seed-cnn on CIFAR-10's training set at batch 128 in leases of 32: 4 shards, 4 workers. */
export const SEED_CIFAR_RUN: CommunicationRun = { model: { ...DEFAULT_MODEL_CONFIG, preset: 'seed-cnn', head: 'align' }, trainImages: 50_000, batch: 128, microBatch: 32, workers: 4 };

/** A run's layout as the codecs see it: tensor sizes of the parameters, and the buffer count. */
export function layoutOf(model: ModelConfig): { segments: number[]; bufferCount: number } {
  const layout = trainingLayout(model);
  return { segments: flatLayout(layout.params).slices.map((s) => s.size), bufferCount: flatLayout(layout.buffers).size };
}

export interface ModeTraffic {
  readonly gradientFrameBytes: number;
  readonly paramsFrameBytes: number;
  readonly shards: number;
  readonly stepsPerEpoch: number;
  readonly syncRoundsPerEpoch: number;
  /** One sync: every shard's gradient (delta) frame up, every worker's parameter frame down. */
  readonly upBytesPerSync: number;
  readonly downBytesPerSync: number;
  /** Averaged over an epoch's steps (DiLoCo syncs once per round of H). */
  readonly bytesPerStep: number;
  readonly bytesPerEpoch: number;
}

export function modeTraffic(m: CommunicationMode, run: CommunicationRun, layout = layoutOf(run.model)): ModeTraffic {
  const shards = Math.ceil(run.batch / run.microBatch);
  const stepsPerEpoch = Math.floor(run.trainImages / run.batch);
  const syncRoundsPerEpoch = m.innerSteps > 0 ? new RoundPlan(stepsPerEpoch, m.innerSteps).roundsPerEpoch : stepsPerEpoch;
  const gradient = gradientFrameBytes(m.compression, layout.segments, layout.bufferCount, run.model.dann);
  const params = paramsFrameBytes(m.compression, layout.segments, layout.bufferCount);
  const upBytesPerSync = shards * gradient;
  const downBytesPerSync = run.workers * params;
  const bytesPerEpoch = syncRoundsPerEpoch * (upBytesPerSync + downBytesPerSync);
  return { gradientFrameBytes: gradient, paramsFrameBytes: params, shards, stepsPerEpoch, syncRoundsPerEpoch, upBytesPerSync, downBytesPerSync, bytesPerStep: bytesPerEpoch / stepsPerEpoch, bytesPerEpoch };
}

/** Mean ms per training step in `m`: its frames on the wire, and for DiLoCo H steps' compute per lease. */
export function modeStepMs(costs: Costs, m: CommunicationMode, traffic: ModeTraffic, shape: RunShape): number {
  const h = Math.max(1, m.innerSteps);
  const modeCosts: Costs = { ...costs, computeMs: costs.computeMs * h, gradientWireMB: traffic.gradientFrameBytes / 1e6, paramsWireMB: traffic.paramsFrameBytes / 1e6 };
  return simulate(modeCosts, shape).stepMs / h;
}
