import { describe, expect, it } from 'vitest';
import { differentiate, unbroadcast } from '../../shared/autodiff/differentiate';
import { GRAD_RULES } from '../../shared/autodiff/registry';
import { RULE_CASES } from '../../shared/autodiff/gradcheck-cases';
import { GraphBuilder } from '../../shared/onnx/graph';
import * as op from '../../shared/onnx/ops';
import { checkRuleCase, RULE_TOLERANCE } from '../../cli/gradcheck';
import { runOnce, webOrt } from '../support/ort';

const f32 = (...xs: number[]) => Float32Array.from(xs);

describe('gradient rule registry', () => {
  it('registers each op type once', () => {
    const ops = GRAD_RULES.map((r) => r.op);
    expect(new Set(ops).size).toBe(ops.length);
  });

  it('has a gradcheck case for every rule', () => {
    const covered = new Set(RULE_CASES.map((c) => c.rule));
    expect(GRAD_RULES.map((r) => r.op).filter((o) => !covered.has(o))).toEqual([]);
  });
});

describe('engine', () => {
  it('sums the gradients of a tensor that feeds several nodes: d(x·x + x)/dx = 2x + 1', async () => {
    const b = new GraphBuilder('fanout');
    const x = b.input('x', 'float32', [3]);
    const y = op.reduceSum(b, op.add(b, op.mul(b, x, x), x), [0], false);
    const [dx] = differentiate(b, y, [x]);
    b.output(dx, 'dx');
    const out = await runOnce(b.serialize(), { x: { data: f32(1, -2, 0.5), dims: [3] } });
    expect(Array.from(out.dx as Float32Array)).toEqual([3, -3, 2]);
  });

  it('un-broadcasts: [2,3,5,4] → [3,1,4] via ReduceSum over axes 0 and 2', async () => {
    const b = new GraphBuilder('unbroadcast');
    const g = b.input('g', 'float32', [2, 3, 5, 4]);
    const r = unbroadcast(b, g, [3, 1, 4], 'test');
    expect(r.shape).toEqual([3, 1, 4]);
    b.output(r, 'r');
    const out = await runOnce(b.serialize(), { g: { data: new Float32Array(120).fill(1), dims: [2, 3, 5, 4] } });
    expect(Array.from(out.r as Float32Array)).toEqual(new Array(12).fill(10));
  });

  it('names an op without a rule and lists the ops that have one', () => {
    const b = new GraphBuilder('norule');
    const x = b.input('x', 'float32', [2]);
    const [y] = b.node('Cos', [x], {}, [{ dtype: 'float32', shape: [2] }]);
    const loss = op.reduceSum(b, y, [0], false);
    expect(() => differentiate(b, loss, [x])).toThrow(/no gradient rule for op 'Cos' \(node producing cos_\d+\); ops with rules: .*Conv/);
  });

  it('rejects a parameter that does not affect the loss', () => {
    const b = new GraphBuilder('unused');
    const x = b.input('x', 'float32', [2]);
    const unused = b.input('u', 'float32', [2]);
    expect(() => differentiate(b, op.reduceSum(b, x, [0], false), [x, unused])).toThrow("'u' does not affect the loss");
  });

  it('Relu and Mul with broadcasting on hand-worked numbers', async () => {
    // y = Σ relu(x) · w with w broadcast over rows: dy/dx = [x > 0] · w, dy/dw = Σ_rows relu(x).
    const b = new GraphBuilder('hand');
    const x = b.input('x', 'float32', [2, 2]);
    const w = b.input('w', 'float32', [2]);
    const y = op.reduceSum(b, op.mul(b, op.relu(b, x), w), [0, 1], false);
    const [dx, dw] = differentiate(b, y, [x, w]);
    b.output(dx, 'dx');
    b.output(dw, 'dw');
    const out = await runOnce(b.serialize(), { x: { data: f32(1, -1, 2, 3), dims: [2, 2] }, w: { data: f32(10, 20), dims: [2] } });
    expect(Array.from(out.dx as Float32Array)).toEqual([10, 0, 10, 20]);
    expect(Array.from(out.dw as Float32Array)).toEqual([3, 3]);
  });

  it('MaxPool sends the gradient of a tied window to exactly one input', async () => {
    const b = new GraphBuilder('ties');
    const x = b.input('x', 'float32', [1, 1, 2, 4]);
    const [pooled] = op.maxPool(b, x, { kernel: [2, 2] });
    const [dx] = differentiate(b, op.reduceSum(b, pooled, [0, 1, 2, 3], false), [x]);
    b.output(dx, 'dx');
    // Window 1 is all 5s (a 4-way tie), window 2 has a 2-way tie of 7s.
    const out = await runOnce(b.serialize(), { x: { data: f32(5, 5, 7, 1, 5, 5, 0, 7), dims: [1, 1, 2, 4] } });
    const g = Array.from(out.dx as Float32Array);
    expect(g.reduce((a, v) => a + v, 0)).toBe(2);
    expect([g[0], g[1], g[4], g[5]].filter((v) => v === 1)).toHaveLength(1);
    expect([g[2], g[3], g[6], g[7]].filter((v) => v === 1)).toHaveLength(1);
    expect(g[3] + g[6]).toBe(0);
  });

  it('gradient reversal multiplies the incoming gradient by −λ', async () => {
    const b = new GraphBuilder('grl');
    const x = b.input('x', 'float32', [2]);
    const lambda = b.input('lambda', 'float32', []);
    const y = op.reduceSum(b, op.mul(b, op.gradReverse(b, x, lambda), b.constant(f32(1, 2), [2])), [0], false);
    const [dx] = differentiate(b, y, [x]);
    b.output(dx, 'dx');
    const out = await runOnce(b.serialize(), { x: { data: f32(0, 0), dims: [2] }, lambda: { data: f32(0.5), dims: [] } });
    expect(Array.from(out.dx as Float32Array)).toEqual([-0.5, -1]);
  });
});

describe('gradcheck harness', () => {
  const mul = () => RULE_CASES.find((c) => c.rule === 'Mul')!;

  it('passes the true gradient and catches one claimed twice the true derivative', async () => {
    const ok = await checkRuleCase(await webOrt(), mul(), 3);
    const wrong = await checkRuleCase(await webOrt(), { ...mul(), scale: 2 }, 3);
    expect(ok.error).toBeLessThan(RULE_TOLERANCE);
    expect(wrong.error).toBeGreaterThan(0.4);
  });

  it('catches an error in a single element of one gradient', async () => {
    // One element of the first input's gradient is off by its own size plus the tensor's typical one:
    // a rule that mishandles one index (a broadcast edge, a tie, an off-by-one slice) looks like this.
    const tamper = (grad: Float32Array, input: number) => {
      if (input !== 0) return;
      const rms = Math.sqrt(grad.reduce((s, g) => s + g * g, 0) / grad.length);
      grad[5] += Math.abs(grad[5]) + rms;
    };
    const wrong = await checkRuleCase(await webOrt(), mul(), 3, tamper);
    console.log(`[gradcheck] one wrong element of 24: direction error ${wrong.directionError.toExponential(2)}, coordinate error ${wrong.coordinateError.toExponential(2)}`);
    expect(wrong.coordinateError).toBeGreaterThan(0.3);
    expect(wrong.error).toBeGreaterThan(RULE_TOLERANCE);
  });
});
