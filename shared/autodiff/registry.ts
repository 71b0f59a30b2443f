import type { GradRule } from './rule';
import { batchNormGrad } from './rules/batchnorm';
import { convGrad } from './rules/conv';
import * as elementwise from './rules/elementwise';
import { gemmGrad, matmulGrad } from './rules/linalg';
import { averagePoolGrad, globalAveragePoolGrad, maxPoolGrad } from './rules/pool';
import { logSoftmaxGrad, reduceMeanGrad, reduceSumGrad, softmaxGrad } from './rules/reduce';
import * as shape from './rules/shape';

/** Every gradient rule, listed once. */
export const GRAD_RULES: readonly GradRule[] = [
  elementwise.addGrad,
  elementwise.subGrad,
  elementwise.mulGrad,
  elementwise.divGrad,
  elementwise.negGrad,
  elementwise.identityGrad,
  elementwise.reluGrad,
  elementwise.whereGrad,
  elementwise.expGrad,
  elementwise.sqrtGrad,
  elementwise.powGrad,
  elementwise.gradReverseGrad,
  shape.reshapeGrad,
  shape.flattenGrad,
  shape.transposeGrad,
  shape.concatGrad,
  shape.splitGrad,
  shape.expandGrad,
  reduceSumGrad,
  reduceMeanGrad,
  softmaxGrad,
  logSoftmaxGrad,
  convGrad,
  gemmGrad,
  matmulGrad,
  maxPoolGrad,
  averagePoolGrad,
  globalAveragePoolGrad,
  batchNormGrad,
];

function register(rules: readonly GradRule[]): ReadonlyMap<string, GradRule> {
  const map = new Map<string, GradRule>();
  for (const rule of rules) {
    if (map.has(rule.op)) throw new Error(`gradient rule for '${rule.op}' is registered twice`);
    map.set(rule.op, rule);
  }
  return map;
}

export const GRAD_RULE_BY_OP = register(GRAD_RULES);
