import type { Attrs, GraphBuilder, NodeRecord, Value } from '../onnx/graph';

/** Graph formulations a rule may choose between (benchmarked; results in README). */
export interface AutodiffOptions {
  /** Conv weight gradient as a Conv over batch-transposed tensors, or as one im2col GEMM. */
  readonly convWeightGrad: 'conv' | 'im2col';
  /** Conv input gradient as a ConvTranspose, or (stride 1) a Conv with the flipped kernel. */
  readonly convInputGrad: 'convTranspose' | 'conv';
}

/**
 * The memory-lean formulation: the seed CNN's step at batch 64 peaks at 69 MiB of wasm heap, against
 * 83 MiB (im2col dW + Conv dX, ~10 % faster) and 100 MiB (im2col dW + ConvTranspose dX); Workers
 * have 128 MB per isolate. `npm run bench -- step` measures all three.
 */
export const DEFAULT_AUTODIFF_OPTIONS: AutodiffOptions = { convWeightGrad: 'conv', convInputGrad: 'convTranspose' };

/** What a gradient rule sees of one forward node. */
export interface GradContext {
  readonly b: GraphBuilder;
  readonly node: NodeRecord;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: Attrs;
  /** Gradient of the loss w.r.t. the first output (rules of multi-output ops read `dys`). */
  readonly dy: Value;
  readonly dys: readonly (Value | null)[];
  readonly options: AutodiffOptions;
}

/**
 * One op's backward pass: exactly one slot per input, `null` where the input is not
 * differentiable (shapes, indices, labels). Slots may have the broadcast shape of the output:
 * the engine reduces them back to the input's shape.
 */
export interface GradRule {
  readonly op: string;
  readonly grad: (ctx: GradContext) => readonly (Value | null)[];
}

export function intsAttr(ctx: GradContext, name: string, fallback: readonly number[]): readonly number[] {
  const a = ctx.attrs[name];
  return a?.kind === 'ints' ? a.value : fallback;
}

export function intAttr(ctx: GradContext, name: string, fallback: number): number {
  const a = ctx.attrs[name];
  return a?.kind === 'int' ? a.value : fallback;
}
