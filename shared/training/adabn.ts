// AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016): a model
// trained on the source keeps its weights, and its batch-norm running statistics are re-estimated on
// unlabelled images of the target domain. The comparison row for DANN: what adapting the statistics
// alone buys.
import type { CifarSplit } from '../data/cifar';
import { buildStatsGraph } from '../models/compile';
import type { OrtApi, SessionOptions } from '../onnx/session';
import type { TrainConfig } from './config';
import { BatchFeeder } from './feeder';
import { GraphRunner } from './step';

/** Target images averaged over: batch statistics settle long before (AdaBN's own figure is the whole set). */
export const ADABN_IMAGES = 10_000;

/**
 * The run's buffers with every batch-norm statistic replaced by its mean over batches of
 * `config.batch` images of `split` (the first `images`, whole batches); undefined for a model without
 * batch norm, which AdaBN leaves as it is. The model must not be a DANN one (it has target statistics).
 */
export async function adaptBatchNorm(
  ort: OrtApi,
  config: TrainConfig,
  params: Float32Array,
  buffers: Float32Array,
  split: CifarSplit,
  captions: Float32Array,
  opts: { images?: number; sessionOptions?: SessionOptions } = {},
): Promise<Float32Array | undefined> {
  if (config.model.dann) throw new Error('AdaBN is the comparison for a source-only model; a DANN run keeps target-domain statistics of its own');
  const batch = config.batch;
  const batches = Math.floor(Math.min(opts.images ?? ADABN_IMAGES, split.count) / batch);
  if (batches < 1) throw new Error(`AdaBN: ${split.count} target images are fewer than one batch of ${batch}`);
  const graph = buildStatsGraph(config.model, batch);
  if (graph.buffers.length === 0) return undefined;
  const runner = await GraphRunner.create(ort, graph, opts.sessionOptions);
  try {
    const feeder = new BatchFeeder(graph, config, captions, batch);
    const sums = new Float32Array(buffers.length);
    for (let b = 0; b < batches; b++) {
      const indices = Array.from({ length: batch }, (_, i) => b * batch + i);
      await runner.statsInto(params, buffers, feeder.feeds({ split, indices, epoch: 0, firstPosition: b * batch }, false), sums);
    }
    return sums.map((s) => s / batches);
  } finally {
    await runner.release();
  }
}
