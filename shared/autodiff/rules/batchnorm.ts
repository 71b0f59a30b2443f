import * as op from '../../onnx/ops';
import type { GradRule } from '../rule';

/**
 * BatchNormalization(x, γ, β, μ, σ²) with μ and σ² as inputs. In training they are the batch's own
 * ReduceMean outputs, so the partials for μ and σ² flow on through those nodes and the composition
 * yields the full batch-statistics gradient.
 */
export const batchNormGrad: GradRule = {
  op: 'BatchNormalization',
  grad: (ctx) => {
    const { b, dy, inputs: [x, gamma, , mean, variance] } = ctx;
    const eps = ctx.attrs.epsilon?.kind === 'float' ? ctx.attrs.epsilon.value : 1e-5;
    const c = x.shape[1];
    const perChannel = [1, c, ...x.shape.slice(2).map(() => 1)];
    const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
    const inv = op.div(b, b.scalar(1), op.sqrt(b, op.add(b, variance, b.scalar(eps))));
    const gammaInv = op.mul(b, gamma, inv);
    const centered = op.sub(b, x, op.reshape(b, mean, perChannel));
    const sumG = op.reduceSum(b, dy, axes, false);
    const sumGCentered = op.reduceSum(b, op.mul(b, dy, centered), axes, false);
    const dx = op.mul(b, dy, op.reshape(b, gammaInv, perChannel));
    const dGamma = op.mul(b, sumGCentered, inv);
    const dMean = op.neg(b, op.mul(b, sumG, gammaInv));
    const invCubed = op.mul(b, inv, op.mul(b, inv, inv));
    const dVar = op.mul(b, op.mul(b, sumGCentered, op.mul(b, gamma, invCubed)), b.scalar(-0.5));
    return [dx, dGamma, sumG, dMean, dVar];
  },
};
