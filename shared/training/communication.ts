// How workers and the coordinator talk (ClusterConfig.compression and .diloco): the codecs of gradient
// and parameter frames, error feedback, and local SGD (DiLoCo) rounds; with the bytes each moves.
// Pure, shared by the single-process trainer (which simulates it exactly) and the cluster; the
// request fields' bounds are in communication-fields.ts (zod stays out of a browser page's loop).
import type { Codec, CodecSpec, DenseCodec } from '../wire/codec';
import { gradientFrameSize } from '../wire/gradient';
import { paramsFrameSize } from '../wire/params';
import type { OptimizerConfig } from '../optim/config';

export interface CompressionConfig {
  /** Codec of the gradient (DiLoCo: parameter delta) frames workers send. */
  readonly gradients: Codec;
  /** Codec of the parameter versions workers fetch (buffers stay fp32). */
  readonly params: DenseCodec;
  /** 'topk': the fraction of each tensor's entries sent. */
  readonly topK: number;
  /** Each worker adds what its last encodings lost to its next gradient (error-feedback.ts). */
  readonly errorFeedback: boolean;
  /**
   * > 0: DGC momentum correction with this factor: workers keep the momentum (error-feedback.ts), so
   * train.optimizer must be SGD without momentum. 0: off.
   */
  readonly momentumCorrection: number;
}

/**
 * Local SGD as in DiLoCo (Douillard et al. 2023): a lease is H inner steps of train.optimizer on the
 * lease's shard of H consecutive steps, from the version it names; the worker sends the parameter
 * delta, and the coordinator applies their mean with outer Nesterov SGD.
 */
export interface DilocoConfig {
  /** Inner steps per round (H); 0: off, synchronous SGD. */
  readonly innerSteps: number;
  readonly outerLr: number;
  readonly outerMomentum: number;
  readonly outerNesterov: boolean;
}

export const DEFAULT_COMPRESSION: CompressionConfig = { gradients: 'fp32', params: 'fp32', topK: 0.01, errorFeedback: false, momentumCorrection: 0 };
export const DEFAULT_DILOCO: DilocoConfig = { innerSteps: 0, outerLr: 0.7, outerMomentum: 0.9, outerNesterov: true };

/** A cluster config's communication settings, defaults filled in (runs stored before they existed have none). */
export function communicationOf(cluster: { readonly compression?: Partial<CompressionConfig>; readonly diloco?: Partial<DilocoConfig> }): { compression: CompressionConfig; diloco: DilocoConfig } {
  return { compression: { ...DEFAULT_COMPRESSION, ...cluster.compression }, diloco: { ...DEFAULT_DILOCO, ...cluster.diloco } };
}

export const gradientCodec = (c: CompressionConfig): CodecSpec => ({ codec: c.gradients, topK: c.topK });
export const paramsCodec = (c: CompressionConfig): CodecSpec => ({ codec: c.params });

/** The outer optimizer of a DiLoCo run: Nesterov SGD on the mean parameter delta (no decay: the inner one has it). */
export function outerOptimizer(d: DilocoConfig): OptimizerConfig {
  return { kind: 'sgd', lr: d.outerLr, momentum: d.outerMomentum, nesterov: d.outerNesterov && d.outerMomentum > 0, weightDecay: 0 };
}

/**
 * DiLoCo rounds: each epoch's steps in rounds of H (the last one of an epoch may be shorter), so
 * evaluations stay at epoch ends. Round r covers global steps [first, first + count).
 */
export class RoundPlan {
  readonly roundsPerEpoch: number;
  constructor(
    readonly stepsPerEpoch: number,
    readonly innerSteps: number,
  ) {
    if (!Number.isInteger(innerSteps) || innerSteps < 1) throw new RangeError(`inner steps ${innerSteps} must be an integer >= 1`);
    this.roundsPerEpoch = Math.ceil(stepsPerEpoch / innerSteps);
  }

  /** The round that starts at global step `step` (a step inside a round has none). */
  roundStartingAt(step: number): number | undefined {
    const inEpoch = step % this.stepsPerEpoch;
    return inEpoch % this.innerSteps === 0 ? Math.floor(step / this.stepsPerEpoch) * this.roundsPerEpoch + inEpoch / this.innerSteps : undefined;
  }

  steps(round: number): { first: number; count: number } {
    const epoch = Math.floor(round / this.roundsPerEpoch);
    const inEpoch = (round % this.roundsPerEpoch) * this.innerSteps;
    return { first: epoch * this.stepsPerEpoch + inEpoch, count: Math.min(this.innerSteps, this.stepsPerEpoch - inEpoch) };
  }
}

/** Bytes of one gradient (or delta) frame as a worker sends it: the values in the codec, fp32 statistics; `dann`: with domain figures. */
export const gradientFrameBytes = (c: CompressionConfig, segments: readonly number[], statCount: number, dann: boolean): number => gradientFrameSize({ codec: gradientCodec(c), segments }, statCount, dann);

/** Bytes of one parameter version frame as workers fetch it: the parameters in the codec, fp32 buffers. */
export const paramsFrameBytes = (c: CompressionConfig, segments: readonly number[], bufferCount: number): number => paramsFrameSize({ codec: paramsCodec(c), segments }, bufferCount);
