import { formatShape, sameShape, type GraphBuilder, type Value } from '../onnx/graph';
import * as op from '../onnx/ops';
import { GRAD_RULE_BY_OP } from './registry';
import { DEFAULT_AUTODIFF_OPTIONS, type AutodiffOptions } from './rule';

/**
 * Reduces a gradient of broadcast shape back to its input's shape: sums the leading axes the input
 * lacks and the axes where the input has size 1. Example: input [3,1,4], gradient [2,3,5,4] →
 * ReduceSum over axes [0, 2] (keepdims) → [1,3,1,4] → Reshape → [3,1,4].
 */
export function unbroadcast(b: GraphBuilder, grad: Value, shape: readonly number[], opName: string): Value {
  if (sameShape(grad.shape, shape)) return grad;
  const lead = grad.shape.length - shape.length;
  if (lead < 0) throw new Error(`${opName}: gradient ${formatShape(grad.shape)} has lower rank than its input ${formatShape(shape)}`);
  const axes: number[] = [];
  grad.shape.forEach((d, i) => {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && d !== 1) axes.push(i);
    else if (shape[i - lead] !== d) {
      throw new Error(`${opName}: gradient ${formatShape(grad.shape)} does not broadcast to input ${formatShape(shape)}`);
    }
  });
  const summed = axes.length ? op.reduceSum(b, grad, axes, true) : grad;
  return op.reshape(b, summed, shape);
}

/**
 * Reverse-mode differentiation of the graph recorded in `b`: appends the backward nodes and
 * returns d(loss)/d(x) for each x in `wrt`, in order. `loss` must be a scalar.
 */
export function differentiate(
  b: GraphBuilder,
  loss: Value,
  wrt: readonly Value[],
  options: AutodiffOptions = DEFAULT_AUTODIFF_OPTIONS,
): Value[] {
  if (loss.shape.length !== 0) throw new Error(`differentiate: loss must be a scalar, got ${formatShape(loss.shape)}`);
  const forward = [...b.nodes];
  const dependsOnWrt = new Set(wrt.map((v) => v.name));
  for (const n of forward) {
    if (n.inputs.some((i) => dependsOnWrt.has(i.name))) for (const o of n.outputs) dependsOnWrt.add(o.name);
  }

  const grads = new Map<string, Value>([[loss.name, b.scalar(1)]]);
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    const dys = node.outputs.map((o) => grads.get(o.name) ?? null);
    if (dys.every((d) => d === null) || !node.inputs.some((x) => dependsOnWrt.has(x.name))) continue;
    const rule = GRAD_RULE_BY_OP.get(node.op);
    const producing = node.outputs.map((o) => o.name).join(', ');
    if (!rule) {
      throw new Error(`no gradient rule for op '${node.op}' (node producing ${producing}); ops with rules: ${[...GRAD_RULE_BY_OP.keys()].sort().join(', ')}`);
    }
    const dy = dys[0] ?? op.expand(b, b.scalar(0), node.outputs[0].shape);
    const slots = rule.grad({ b, node, inputs: node.inputs, outputs: node.outputs, attrs: node.attrs, dy, dys, options });
    if (slots.length !== node.inputs.length) {
      throw new Error(`${node.op}: gradient rule returned ${slots.length} gradients for ${node.inputs.length} inputs`);
    }
    slots.forEach((slot, k) => {
      const input = node.inputs[k];
      if (!slot || !dependsOnWrt.has(input.name)) return;
      if (slot.dtype !== input.dtype) throw new Error(`${node.op}: gradient for input ${k} is ${slot.dtype}, input is ${input.dtype}`);
      const g = unbroadcast(b, slot, input.shape, node.op);
      const previous = grads.get(input.name);
      grads.set(input.name, previous ? op.add(b, previous, g) : g);
    });
  }
  return wrt.map((v) => {
    const g = grads.get(v.name);
    if (!g) throw new Error(`differentiate: '${v.name}' does not affect the loss`);
    return g;
  });
}
