import type { Value } from '../../onnx/graph';
import * as op from '../../onnx/ops';
import type { GradContext, GradRule } from '../rule';
import { intAttr, intsAttr } from '../rule';

interface ConvGeometry {
  pads: [number, number, number, number];
  strides: [number, number];
  kernel: [number, number];
}

function geometry(ctx: GradContext): ConvGeometry {
  const [w] = ctx.inputs.slice(1);
  if (intAttr(ctx, 'group', 1) !== 1) throw new Error('Conv: the gradient rule supports group = 1 only');
  const dil = intsAttr(ctx, 'dilations', [1, 1]);
  if (dil.some((d) => d !== 1)) throw new Error('Conv: the gradient rule supports dilation 1 only');
  const p = intsAttr(ctx, 'pads', [0, 0, 0, 0]);
  const s = intsAttr(ctx, 'strides', [1, 1]);
  return { pads: [p[0], p[1], p[2], p[3]], strides: [s[0], s[1]], kernel: [w.shape[2], w.shape[3]] };
}

/** dX = ConvTranspose(g, W); output_padding recovers rows a strided conv skipped. */
function inputGrad(ctx: GradContext, g: ConvGeometry): Value {
  const { b, dy, inputs: [x, w] } = ctx;
  const full = (i: 0 | 1) => g.strides[i] * (dy.shape[2 + i] - 1) + g.kernel[i] - g.pads[i] - g.pads[i + 2];
  const outputPadding: [number, number] = [x.shape[2] - full(0), x.shape[3] - full(1)];
  return op.convTranspose(b, dy, w, { pads: g.pads, strides: g.strides, outputPadding });
}

/**
 * dX as a plain Conv (stride 1): g convolved with W flipped spatially and with its channel axes
 * swapped, padded by k−1−p. Strided convs fall back to ConvTranspose.
 */
function inputGradConv(ctx: GradContext, g: ConvGeometry): Value {
  const { b, dy, inputs: [, w] } = ctx;
  if (g.strides[0] !== 1 || g.strides[1] !== 1) return inputGrad(ctx, g);
  const [m, c, kh, kw] = w.shape;
  const swapped = op.transpose(b, w, [1, 0, 2, 3]);
  const flipped = b.node('Slice', [swapped, b.int64s([kh - 1, kw - 1]), b.int64s([-kh - 1, -kw - 1]), b.int64s([2, 3]), b.int64s([-1, -1])], {}, [
    { dtype: 'float32', shape: [c, m, kh, kw] },
  ])[0];
  const pads: [number, number, number, number] = [kh - 1 - g.pads[0], kw - 1 - g.pads[1], kh - 1 - g.pads[2], kw - 1 - g.pads[3]];
  return op.conv(b, dy, flipped, null, { pads });
}

/**
 * dW as a Conv over batch-transposed tensors: dW[m,c] = Σ_n X[n,c] ⋆ g[n,m], i.e. X with its batch
 * axis as channels, convolved with g as the kernel, dilated by the forward stride.
 */
function weightGradConv(ctx: GradContext, g: ConvGeometry): Value {
  const { b, dy, inputs: [x] } = ctx;
  const xt = op.transpose(b, x, [1, 0, 2, 3]);
  const gt = op.transpose(b, dy, [1, 0, 2, 3]);
  let dw = op.conv(b, xt, gt, null, { pads: g.pads, dilations: g.strides });
  if (dw.shape[2] !== g.kernel[0] || dw.shape[3] !== g.kernel[1]) {
    dw = op.slice(b, dw, [0, 0], g.kernel, [2, 3]);
  }
  return op.transpose(b, dw, [1, 0, 2, 3]);
}

/**
 * dW as one GEMM over im2col patches: dW[M, C·kh·kw] = g[M, N·Ho·Wo] · cols[N·Ho·Wo, C·kh·kw].
 * The patches are kh·kw strided slices of the padded input, stacked behind the channel axis.
 */
function weightGradIm2col(ctx: GradContext, g: ConvGeometry): Value {
  const { b, dy, inputs: [x, w] } = ctx;
  const [n, c] = x.shape;
  const [, m, ho, wo] = dy.shape;
  const [kh, kw] = g.kernel;
  const padded = g.pads.some((p) => p !== 0) ? op.pad(b, x, [0, 0, g.pads[0], g.pads[1], 0, 0, g.pads[2], g.pads[3]]) : x;
  const patches: Value[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const ends = [i + g.strides[0] * (ho - 1) + 1, j + g.strides[1] * (wo - 1) + 1];
      const patch = op.slice(b, padded, [i, j], ends, [2, 3], g.strides);
      patches.push(op.reshape(b, patch, [n, c, 1, ho * wo]));
    }
  }
  const cols = op.reshape(b, op.concat(b, patches, 2), [n, c * kh * kw, ho * wo]);
  const colsFlat = op.reshape(b, op.transpose(b, cols, [1, 0, 2]), [c * kh * kw, n * ho * wo]);
  const gFlat = op.reshape(b, op.transpose(b, op.reshape(b, dy, [n, m, ho * wo]), [1, 0, 2]), [m, n * ho * wo]);
  return op.reshape(b, op.gemm(b, gFlat, colsFlat, null, { transB: true }), w.shape);
}

export const convGrad: GradRule = {
  op: 'Conv',
  grad: (ctx) => {
    const g = geometry(ctx);
    const dx = ctx.options.convInputGrad === 'conv' ? inputGradConv(ctx, g) : inputGrad(ctx, g);
    const dw = ctx.options.convWeightGrad === 'im2col' ? weightGradIm2col(ctx, g) : weightGradConv(ctx, g);
    if (ctx.inputs.length === 2) return [dx, dw];
    return [dx, dw, op.reduceSum(ctx.b, ctx.dy, [0, 2, 3], false)];
  },
};
