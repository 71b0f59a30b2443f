import { numel } from '../../onnx/graph';
import * as op from '../../onnx/ops';
import type { GradRule } from '../rule';
import { intsAttr } from '../rule';

/**
 * Scatter-adds g at the argmax positions MaxPool reported. Unlike a mask x == upsample(max), ties
 * inside a window (frequent on real images) send the gradient to exactly one input.
 */
export const maxPoolGrad: GradRule = {
  op: 'MaxPool',
  grad: ({ b, dys, inputs: [x], outputs: [, indices] }) => {
    const dy = dys[0];
    if (!dy) return [null];
    const size = numel(x.shape);
    const zeros = op.expand(b, b.scalar(0), [size]);
    const flatIndices = op.reshape(b, indices, [numel(indices.shape)]);
    const flat = op.scatterAdd(b, zeros, flatIndices, op.reshape(b, dy, [numel(dy.shape)]));
    return [op.reshape(b, flat, x.shape)];
  },
};

/** Average pooling without padding: a depthwise ConvTranspose with a constant 1/(kh·kw) kernel. */
export const averagePoolGrad: GradRule = {
  op: 'AveragePool',
  grad: (ctx) => {
    const { b, dy, inputs: [x] } = ctx;
    const [kh, kw] = intsAttr(ctx, 'kernel_shape', []);
    const strides = intsAttr(ctx, 'strides', [1, 1]);
    const pads = intsAttr(ctx, 'pads', [0, 0, 0, 0]);
    if (pads.some((p) => p !== 0)) throw new Error('AveragePool: the gradient rule supports pads = 0 only');
    const channels = x.shape[1];
    const kernel = b.constant(new Float32Array(channels * kh * kw).fill(1 / (kh * kw)), [channels, 1, kh, kw]);
    const full = (i: 0 | 1) => strides[i] * (dy.shape[2 + i] - 1) + [kh, kw][i];
    const outputPadding: [number, number] = [x.shape[2] - full(0), x.shape[3] - full(1)];
    return [op.convTranspose(b, dy, kernel, { strides: [strides[0], strides[1]], outputPadding, group: channels })];
  },
};

export const globalAveragePoolGrad: GradRule = {
  op: 'GlobalAveragePool',
  grad: ({ b, dy, inputs: [x] }) => [op.expand(b, op.scale(b, dy, 1 / (x.shape[2] * x.shape[3])), x.shape)],
};
