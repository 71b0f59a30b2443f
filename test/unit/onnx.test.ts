import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../shared/onnx/graph';
import { matrixFlops } from '../../shared/onnx/flops';
import * as op from '../../shared/onnx/ops';
import { runOnce } from '../support/ort';

const f32 = (...xs: number[]) => Float32Array.from(xs);

describe('graph builder', () => {
  it('emits a model ORT runs: conv, pool and reduce with hand-checked numbers', async () => {
    const b = new GraphBuilder('t');
    const x = b.input('x', 'float32', [1, 1, 2, 2]);
    const w = b.input('w', 'float32', [1, 1, 1, 1]);
    const y = op.conv(b, x, w, null);
    const [pooled, indices] = op.maxPool(b, y, { kernel: [2, 2] });
    b.output(op.reduceSum(b, y, [0, 1, 2, 3], false), 'sum');
    b.output(pooled, 'max');
    b.output(indices, 'argmax');
    const out = await runOnce(b.serialize(), { x: { data: f32(1, 4, 2, 3), dims: [1, 1, 2, 2] }, w: { data: f32(2), dims: [1, 1, 1, 1] } });
    expect(Array.from(out.sum as Float32Array)).toEqual([20]);
    expect(Array.from(out.max as Float32Array)).toEqual([8]);
    expect(Array.from(out.argmax as BigInt64Array)).toEqual([1n]);
  });

  it('is deterministic: the same graph gives the same bytes', () => {
    const build = () => {
      const b = new GraphBuilder('d');
      const x = b.input('x', 'float32', [2, 3]);
      b.output(op.softmax(b, op.add(b, x, b.scalar(1)), -1), 'y');
      return b.serialize();
    };
    expect(build()).toEqual(build());
  });

  it('drops nodes no output depends on and shares equal constants', () => {
    const b = new GraphBuilder('p');
    const x = b.input('x', 'float32', [4]);
    op.exp(b, x); // dead
    expect(b.scalar(2)).toBe(b.scalar(2));
    b.output(op.mul(b, x, b.scalar(2)), 'y');
    expect(b.liveNodes().nodes.map((n) => n.op)).toEqual(['Mul', 'Identity']);
  });

  it('lowers GradReverse to Identity', async () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'float32', [2]);
    const lambda = b.input('lambda', 'float32', []);
    b.output(op.gradReverse(b, x, lambda), 'y');
    const out = await runOnce(b.serialize(), { x: { data: f32(3, -1), dims: [2] }, lambda: { data: f32(0.5), dims: [] } });
    expect(Array.from(out.y as Float32Array)).toEqual([3, -1]);
  });

  it('names the op and shapes when shapes do not fit', () => {
    const b = new GraphBuilder('e');
    const x = b.input('x', 'float32', [2, 3]);
    const y = b.input('y', 'float32', [4, 5]);
    expect(() => op.add(b, x, y)).toThrow('Add: shapes [2,3] and [4,5] do not broadcast');
    expect(() => op.matmul(b, x, y)).toThrow('MatMul: inner sizes differ: [2,3] × [4,5]');
    expect(() => op.reshape(b, x, [5])).toThrow('Reshape: cannot reshape [2,3] to [5]');
    expect(() => b.input('x', 'float32', [1])).toThrow("tensor name 'x' is used twice");
  });

  it('counts matrix FLOPs: 2 per multiply-add', () => {
    const b = new GraphBuilder('f');
    const x = b.input('x', 'float32', [2, 3, 4, 4]);
    const w = b.input('w', 'float32', [5, 3, 3, 3]);
    const a = b.input('a', 'float32', [2, 6]);
    const m = b.input('m', 'float32', [6, 7]);
    b.output(op.conv(b, x, w, null, { pads: [1, 1, 1, 1] }), 'c');
    b.output(op.gemm(b, a, m, null), 'g');
    expect(matrixFlops(b.liveNodes().nodes)).toBe(2 * (2 * 5 * 4 * 4) * 27 + 2 * 2 * 7 * 6);
  });
});
