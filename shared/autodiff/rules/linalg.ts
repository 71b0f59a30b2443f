import type { Value } from '../../onnx/graph';
import * as op from '../../onnx/ops';
import type { GradContext, GradRule } from '../rule';
import { intAttr } from '../rule';

const transposeLast2 = (ctx: GradContext, x: Value) => {
  const perm = x.shape.map((_, i) => i);
  perm.splice(-2, 2, perm.length - 1, perm.length - 2);
  return op.transpose(ctx.b, x, perm);
};

/** Batched and broadcast MatMul; broadcast batch dimensions are summed by the engine. */
export const matmulGrad: GradRule = {
  op: 'MatMul',
  grad: (ctx) => {
    const { b, dy, inputs: [x, y] } = ctx;
    return [op.matmul(b, dy, transposeLast2(ctx, y)), op.matmul(b, transposeLast2(ctx, x), dy)];
  },
};

/**
 * Gemm with alpha = beta = 1. With A' = op(A), B' = op(B): dA' = g·B'ᵀ and dB' = A'ᵀ·g;
 * a transposed operand receives the transpose, written as a Gemm with flipped flags.
 */
export const gemmGrad: GradRule = {
  op: 'Gemm',
  grad: (ctx) => {
    const { b, dy, inputs } = ctx;
    const [a, w] = inputs;
    const transA = intAttr(ctx, 'transA', 0) === 1;
    const transB = intAttr(ctx, 'transB', 0) === 1;
    const da = transA ? op.gemm(b, w, dy, null, { transA: transB, transB: true }) : op.gemm(b, dy, w, null, { transB: !transB });
    const dw = transB ? op.gemm(b, dy, a, null, { transA: true, transB: transA }) : op.gemm(b, a, dy, null, { transA: !transA });
    return inputs.length === 3 ? [da, dw, dy] : [da, dw];
  },
};
