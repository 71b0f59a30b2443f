// `npm run gradcheck` as part of the suite: every rule case and every preset's training graph.
import { describe, expect, it } from 'vitest';
import { RULE_CASES } from '../../shared/autodiff/gradcheck-cases';
import { LOSS_CASES, PRESET_CHECKS, checkPreset, checkRuleCase, presetLabel, presetSeed, type CheckResult } from '../../cli/gradcheck';
import { webOrt } from '../support/ort';

function expectWithinTolerance(results: CheckResult[]): void {
  const failed = results.filter((r) => !(r.error <= r.tolerance)).map((r) => `${r.name}: ${r.error.toExponential(2)} > ${r.tolerance}`);
  expect(failed).toEqual([]);
}

describe('gradient check against central finite differences', () => {
  it.each([...RULE_CASES, ...LOSS_CASES].map((c) => [c.name, c] as const))('rule %s', async (_name, c) => {
    expectWithinTolerance([await checkRuleCase(await webOrt(), c, 7)]);
  });

  it.each(PRESET_CHECKS.map((c) => [presetLabel(c), c] as const))('preset %s, every parameter', async (_label, c) => {
    const results = await checkPreset(await webOrt(), c, presetSeed(c, 7));
    expect(results.length).toBeGreaterThan(5);
    expectWithinTolerance(results);
  });
});
