import { numel, type NodeRecord } from './graph';

/**
 * Multiply-add work of the matrix ops (Conv, ConvTranspose, Gemm, MatMul) as FLOPs (2 per
 * multiply-add); elementwise ops are memory-bound and left out, as FLOP counts usually do.
 */
export function matrixFlops(nodes: readonly NodeRecord[]): number {
  let flops = 0;
  for (const n of nodes) {
    const out = n.outputs[0];
    if (n.op === 'Conv') {
      const [, cPerGroup, kh, kw] = n.inputs[1].shape;
      flops += 2 * numel(out.shape) * cPerGroup * kh * kw;
    } else if (n.op === 'ConvTranspose') {
      // Each input element scatters into kh·kw·(out channels per group) outputs.
      const [, mPerGroup, kh, kw] = n.inputs[1].shape;
      flops += 2 * numel(n.inputs[0].shape) * mPerGroup * kh * kw;
    } else if (n.op === 'Gemm') {
      const a = n.inputs[0].shape;
      const transA = n.attrs.transA?.kind === 'int' && n.attrs.transA.value === 1;
      flops += 2 * numel(out.shape) * (transA ? a[0] : a[1]);
    } else if (n.op === 'MatMul') {
      const a = n.inputs[0].shape;
      flops += 2 * numel(out.shape) * a[a.length - 1];
    }
  }
  return flops;
}
