// Turns examples into the feeds of a training or eval graph: the one place that decides how a batch is
// normalised, augmented and paired with caption knowledge, for the reference trainer and every worker.
import { IMAGE_BYTES, type CifarSplit } from '../data/cifar';
import { CIFAR10_NORMALIZATION, SEED_NORMALIZATION, fillBatch, type Normalization } from '../data/normalize';
import { exampleRng } from '../data/shuffle';
import type { CompiledGraph, TensorSpec } from '../models/compile';
import { numel } from '../onnx/graph';
import type { Feed } from '../onnx/session';
import { captionFeed } from './caption-feed';
import type { TrainConfig } from './config';
import type { DataFeeds } from './step';

/** The normalisation a config names. */
export const NORMALIZATION: Record<TrainConfig['normalization'], Normalization> = { seed: SEED_NORMALIZATION, cifar: CIFAR10_NORMALIZATION };

/** DANN's reversal strength schedule (Ganin et al.): 2 / (1 + e^(−10p)) − 1 over progress p ∈ [0, 1]. */
export const dannLambda = (progress: number) => 2 / (1 + Math.exp(-10 * progress)) - 1;

/** Where a batch's examples come from and where they sit in the epoch's order (their augmentation key). */
export interface BatchExamples {
  readonly split: CifarSplit;
  readonly indices: ArrayLike<number>;
  readonly epoch: number;
  /** Position of indices[0] in the epoch order; example i is at firstPosition + i. */
  readonly firstPosition: number;
  /** Per-example caption vectors [n, 768] for the concat head; its class caption without. */
  readonly captions?: Float32Array;
}

/** A DANN step's unlabelled target images: examples of the target domain's train split (labels unread). */
export interface DannExamples {
  readonly split: CifarSplit;
  readonly indices: ArrayLike<number>;
  readonly lambda: number;
}

/** Reusable input buffers and the feeds of one batch size. */
export class BatchFeeder {
  private readonly image: Float32Array;
  private readonly labels: BigInt64Array;
  private readonly target: Float32Array;
  private readonly targetLabels: BigInt64Array;
  private readonly fixed: Record<string, Feed> = {};
  private readonly norm: Normalization;

  constructor(
    private readonly graph: CompiledGraph,
    private readonly config: Pick<TrainConfig, 'model' | 'normalization' | 'seed'>,
    private readonly captions: Float32Array,
    readonly batch: number,
  ) {
    this.image = new Float32Array(batch * IMAGE_BYTES);
    this.labels = new BigInt64Array(batch);
    this.target = new Float32Array(graph.dataInputs.some((d) => d.name === 'target_image') ? batch * IMAGE_BYTES : 0);
    this.targetLabels = new BigInt64Array(batch);
    this.norm = NORMALIZATION[config.normalization];
    for (const spec of graph.dataInputs) {
      if (spec.name === 'class_text' || spec.name === 'class_texts') this.fixed[spec.name] = this.caption(spec);
    }
  }

  private caption(spec: TensorSpec): Feed {
    return captionFeed(spec, this.captions, this.config.model.captionsPerClass, this.labels);
  }

  /** Feeds of one batch; `augment` applies pad-4 crop + flip keyed by each example's epoch position. */
  feeds(examples: BatchExamples, augment: boolean, dann?: DannExamples): DataFeeds {
    const { seed } = this.config;
    const { epoch, firstPosition } = examples;
    const rng = (source: number) => (augment ? { rng: (b: number) => exampleRng(source, epoch, firstPosition + b), padCrop: 4, flip: true } : undefined);
    fillBatch(examples.split, examples.indices, this.image, this.labels, this.norm, rng(seed));
    const feeds: Record<string, Feed> = {
      ...this.fixed,
      image: { data: this.image, dims: [this.batch, 3, 32, 32] },
      label: { data: this.labels, dims: [this.batch] },
    };
    for (const spec of this.graph.dataInputs) {
      if (spec.name !== 'caption') continue;
      if (examples.captions && examples.captions.length !== numel(spec.shape)) throw new Error(`per-image captions: ${examples.captions.length} values for ${spec.shape.join(' × ')}`);
      feeds.caption = examples.captions ? { data: examples.captions, dims: spec.shape } : this.caption(spec);
    }
    if (dann && this.target.length) {
      fillBatch(dann.split, dann.indices, this.target, this.targetLabels, this.norm, rng(seed + 1));
      feeds.target_image = { data: this.target, dims: [this.batch, 3, 32, 32] };
      feeds.lambda = { data: new Float32Array([dann.lambda]), dims: [] };
    }
    return feeds;
  }
}
