import type { GraphBuilder, Value } from '../onnx/graph';
import * as op from '../onnx/ops';

/**
 * Mean cross-entropy of logits [B,C] against int64 labels [B], composed from LogSoftmax, Mul and
 * ReduceSum (their rules give the familiar (softmax − target)/B). Label smoothing ε spreads ε/C
 * of the target mass over all classes.
 */
export function crossEntropy(b: GraphBuilder, logits: Value, labels: Value, smoothing = 0): Value {
  const [batch, classes] = logits.shape;
  const off = smoothing / classes;
  const target = op.oneHot(b, labels, classes, off, 1 - smoothing + off);
  const logp = op.logSoftmax(b, logits, -1);
  return op.scale(b, op.reduceSum(b, op.mul(b, logp, target), [0, 1], false), -1 / batch);
}

/** Number of rows whose arg-max equals the label, as a float32 scalar. */
export function correctCount(b: GraphBuilder, logits: Value, labels: Value): Value {
  const hits = op.cast(b, op.equal(b, op.argMax(b, logits, 1), labels), 'float32');
  return op.reduceSum(b, hits, [0], false);
}
