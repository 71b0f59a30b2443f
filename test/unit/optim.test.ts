import { describe, expect, it } from 'vitest';
import { defaultOptimizerConfig, optimizerPatchSchema, optimizerSchema, withOptimizerDefaults, type AdamConfig, type OptimizerConfig, type SgdConfig } from '../../shared/optim/config';
import { cloneOptimizerState, createOptimizer, restoreOptimizer } from '../../shared/optim/optimizer';
import { defaultScheduleConfig, learningRate, scheduleSchema, type ScheduleConfig } from '../../shared/optim/schedule';
import { schemaErrors } from '../../shared/schema/issues';

// Shared fixture: p = [1, -2, 3], constant g = [0.5, 0.5, -1], weight decay 0.1,
// decay mask [1, 0, 1] (element 1 plays the role of a bias: never decayed).
const P0 = [1, -2, 3];
const G = [0.5, 0.5, -1];
const MASK = new Uint8Array([1, 0, 1]);

function expectClose(actual: Float32Array, expected: number[], digits = 6): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, digits));
}

/** Runs `steps` updates with the fixture and returns the params after each one. */
function run(config: OptimizerConfig, steps: number, grads: number[] = G): Float32Array[] {
  const opt = createOptimizer(config, 3);
  const p = new Float32Array(P0);
  const out: Float32Array[] = [];
  for (let s = 0; s < steps; s++) {
    opt.step(p, new Float32Array(grads), config.lr, MASK);
    out.push(p.slice());
  }
  return out;
}

const sgd = (over: Partial<SgdConfig> = {}): SgdConfig => ({
  kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0.1, ...over,
});
const adam = (kind: 'adam' | 'adamw', over: Partial<AdamConfig> = {}): AdamConfig => ({
  kind, lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, ...over,
});

describe('sgd', () => {
  it('momentum + L2 decay with mask, hand-computed', () => {
    const [s1, s2] = run(sgd(), 2);
    // Step 1: g' = g + 0.1*p*mask = [0.5+0.1, 0.5, -1+0.3] = [0.6, 0.5, -0.7]
    //         buf = g' (buf starts at 0);  p -= 0.1*buf -> [0.94, -2.05, 3.07]
    expectClose(s1, [0.94, -2.05, 3.07]);
    // Step 2: g' = [0.5+0.094, 0.5, -1+0.307] = [0.594, 0.5, -0.693]
    //         buf = 0.9*[0.6, 0.5, -0.7] + g' = [1.134, 0.95, -1.323]
    //         p -= 0.1*buf -> [0.94-0.1134, -2.05-0.095, 3.07+0.1323] = [0.8266, -2.145, 3.2023]
    expectClose(s2, [0.8266, -2.145, 3.2023]);
  });

  it('nesterov looks ahead: step 1 moves (1 + momentum)x as far as plain momentum', () => {
    const [s1, s2] = run(sgd({ nesterov: true }), 2);
    // Step 1: g' = [0.6, 0.5, -0.7], buf = g', update = g' + 0.9*buf = 1.9*g' = [1.14, 0.95, -1.33]
    //         p -= 0.1*update -> [0.886, -2.095, 3.133]
    expectClose(s1, [0.886, -2.095, 3.133]);
    // Step 2: g' = [0.5+0.0886, 0.5, -1+0.3133] = [0.5886, 0.5, -0.6867]
    //         buf = 0.9*[0.6, 0.5, -0.7] + g' = [1.1286, 0.95, -1.3167]
    //         update = g' + 0.9*buf = [1.60434, 1.355, -1.87173]
    //         p -> [0.886-0.160434, -2.095-0.1355, 3.133+0.187173] = [0.725566, -2.2305, 3.320173]
    expectClose(s2, [0.725566, -2.2305, 3.320173]);

    const [plain1] = run(sgd(), 1);
    for (let i = 0; i < 3; i++) {
      expect(s1[i] - P0[i]).toBeCloseTo(1.9 * (plain1[i] - P0[i]), 6);
    }
  });

  it('momentum 0 is plain gradient descent and keeps no state', () => {
    const opt = createOptimizer(sgd({ momentum: 0, weightDecay: 0 }), 3);
    expect(opt.state.slots).toHaveLength(0);
    const p = new Float32Array(P0);
    opt.step(p, new Float32Array(G), 0.1);
    // p - 0.1*g = [1-0.05, -2-0.05, 3+0.1]
    expectClose(p, [0.95, -2.05, 3.1]);
  });
});

describe('adam / adamw', () => {
  it('bias correction makes the first update ≈ lr * sign(g) regardless of |g|', () => {
    const opt = createOptimizer(adam('adam', { weightDecay: 0, lr: 1e-3 }), 3);
    const p = new Float32Array([0, 0, 0]);
    opt.step(p, new Float32Array([1e-3, -50, 7]), 1e-3);
    // m̂ = m/(1-0.9) = g, v̂ = v/(1-0.999) = g², update = lr*g/(|g|+eps) ≈ lr*sign(g)
    // (for |g| = 1e-3, eps shrinks it by a relative 1e-5, i.e. 1e-8 absolute)
    expectClose(p, [-1e-3, 1e-3, -1e-3], 7);
  });

  it('adam with L2 decay and mask, hand-computed', () => {
    const [s1, s2] = run(adam('adam'), 2);
    // Step 1: g' = [0.6, 0.5, -0.7]; m̂ = g', v̂ = g'^2, so p -= 0.01*sign(g') -> [0.99, -2.01, 3.01]
    expectClose(s1, [0.99, -2.01, 3.01]);
    // Step 2: g' = [0.5+0.099, 0.5, -1+0.301] = [0.599, 0.5, -0.699]
    //   m = 0.9*[0.06, 0.05, -0.07] + 0.1*g' = [0.1139, 0.095, -0.1329];  m̂ = m/0.19 = [0.599474, 0.5, -0.699474]
    //   v = 0.999*[0.00036, 0.00025, 0.00049] + 0.001*g'^2 = [0.000718441, 0.00049975, 0.000978111]
    //   v̂ = v/0.001999 = [0.3594002, 0.25, 0.4893002];  sqrt(v̂) = [0.5995000, 0.5, 0.6995000]
    //   p -= 0.01*m̂/sqrt(v̂): [0.99-0.0099996, -2.01-0.01, 3.01+0.0099996] = [0.9800004, -2.02, 3.0199996]
    expectClose(s2, [0.9800004, -2.02, 3.0199996]);
  });

  it('adamw decays decoupled from the gradient, hand-computed', () => {
    const [s1, s2] = run(adam('adamw'), 2);
    // Step 1: p *= 1 - 0.01*0.1 (masked) -> [0.999, -2, 2.997]; then Adam on raw g: -= 0.01*sign(g)
    //         -> [0.989, -2.01, 3.007]
    expectClose(s1, [0.989, -2.01, 3.007]);
    // Step 2: constant g gives m̂ = g, v̂ = g² again, so the Adam part is again 0.01*sign(g).
    //         p = [0.989*0.999, -2.01, 3.007*0.999] - 0.01*sign(g) = [0.978011, -2.02, 3.013993]
    expectClose(s2, [0.978011, -2.02, 3.013993]);
  });

  it('adam normalises L2 decay away while adamw shrinks proportionally to p', () => {
    // Zero gradient: only decay acts. p = [1, -2, 3], wd = 0.1, lr = 0.01.
    const zero = [0, 0, 0];
    const [a1] = run(adam('adam'), 1, zero);
    const [w1] = run(adam('adamw'), 1, zero);
    // Adam: g' = wd*p, update = lr*sign(g') -> [0.99, -2 (masked, g'=0 so m=v=0), 2.99]
    expectClose(a1, [0.99, -2, 2.99]);
    // AdamW: p *= 1 - lr*wd = 0.999 -> [0.999, -2, 2.997]; Adam part is 0 for g = 0.
    expectClose(w1, [0.999, -2, 2.997]);
  });

  it('weight decay of 0 makes adam and adamw identical', () => {
    const [a] = run(adam('adam', { weightDecay: 0 }), 3);
    const [w] = run(adam('adamw', { weightDecay: 0 }), 3);
    expect(Array.from(a)).toEqual(Array.from(w));
  });
});

describe('state save/restore', () => {
  const configs: OptimizerConfig[] = [sgd({ nesterov: true }), adam('adam'), adam('adamw')];
  for (const config of configs) {
    it(`${config.kind}: restored optimizer continues bit-identically`, () => {
      const n = 64;
      const grad = (s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + s));
      const mask = Uint8Array.from({ length: n }, (_, i) => i % 3 === 0 ? 0 : 1);
      const a = createOptimizer(config, n);
      const pa = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
      for (let s = 0; s < 3; s++) a.step(pa, grad(s), config.lr, mask);

      const checkpoint = cloneOptimizerState(a.state);
      const pb = pa.slice();
      const b = restoreOptimizer(config, checkpoint);
      expect(b.state.step).toBe(3);
      expect(b.size).toBe(n);

      for (let s = 3; s < 6; s++) {
        a.step(pa, grad(s), config.lr, mask);
        b.step(pb, grad(s), config.lr, mask);
      }
      expect(Array.from(pb)).toEqual(Array.from(pa));
      expect(b.state.step).toBe(6);
      // The checkpoint was copied, not adopted.
      expect(checkpoint.step).toBe(3);
      expect(Array.from(checkpoint.slots[0])).not.toEqual(Array.from(b.state.slots[0]));
    });
  }

  it('rejects mismatched state', () => {
    const state = createOptimizer(adam('adam'), 4).state;
    expect(() => restoreOptimizer(sgd(), state)).toThrow(/2 slots, sgd config expects 1/);
    expect(() => restoreOptimizer(adam('adam'), state, 5)).toThrow(/slot 0 has length 4, expected 5/);
    expect(() => restoreOptimizer(sgd({ momentum: 0 }), { step: 0, slots: [] })).toThrow(/size is required/);
    expect(restoreOptimizer(sgd({ momentum: 0 }), { step: 0, slots: [] }, 4).size).toBe(4);
  });

  it('step checks lengths', () => {
    const opt = createOptimizer(adam('adam'), 3);
    expect(() => opt.step(new Float32Array(3), new Float32Array(2), 0.1)).toThrow(/grads: length 2/);
    expect(() => opt.step(new Float32Array(3), new Float32Array(3), 0.1, new Uint8Array(4))).toThrow(/decayMask/);
  });
});

describe('learningRate', () => {
  const cos: ScheduleConfig = { warmupSteps: 10, decay: 'cosine', totalSteps: 110, minLrFactor: 0.1 };
  const lin: ScheduleConfig = { ...cos, decay: 'linear' };

  it('warms up linearly from ~0 to base', () => {
    expect(learningRate(2, cos, 0)).toBeCloseTo(0.2, 12); // 2 * 1/10
    expect(learningRate(2, cos, 4)).toBeCloseTo(1.0, 12); // 2 * 5/10 (middle)
    expect(learningRate(2, cos, 9)).toBeCloseTo(2.0, 12); // 2 * 10/10 (end)
    expect(learningRate(2, cos, 10)).toBeCloseTo(2.0, 12); // decay starts at base
  });

  it('cosine decays to base * minLrFactor', () => {
    // midpoint step 60: progress 0.5 -> 0.1 + 0.9 * 0.5*(1 + cos(pi/2)) = 0.55
    expect(learningRate(1, cos, 60)).toBeCloseTo(0.55, 12);
    // quarter step 35: 0.1 + 0.9 * 0.5*(1 + cos(pi/4)) = 0.1 + 0.45*1.7071068 = 0.8681981
    expect(learningRate(1, cos, 35)).toBeCloseTo(0.8681981, 6);
    expect(learningRate(1, cos, 110)).toBeCloseTo(0.1, 12);
    expect(learningRate(1, cos, 5000)).toBeCloseTo(0.1, 12);
  });

  it('linear decays to base * minLrFactor', () => {
    // quarter step 35: 0.1 + 0.9 * 0.75 = 0.775
    expect(learningRate(1, lin, 35)).toBeCloseTo(0.775, 12);
    expect(learningRate(1, lin, 60)).toBeCloseTo(0.55, 12);
    expect(learningRate(1, lin, 110)).toBeCloseTo(0.1, 12);
    expect(learningRate(1, lin, 200)).toBeCloseTo(0.1, 12);
  });

  it('constant holds base after warm-up; default is constant without warm-up', () => {
    expect(learningRate(3, { ...cos, decay: 'constant' }, 1000)).toBe(3);
    expect(learningRate(3, defaultScheduleConfig(), 0)).toBe(3);
  });
});

describe('config validation', () => {
  const optimizerErrors = (c: unknown) => schemaErrors(optimizerSchema, c, 'optimizer');
  const scheduleErrors = (c: unknown) => schemaErrors(scheduleSchema, c, 'schedule');

  it('names the bad kind and the allowed ones', () => {
    expect(optimizerErrors({ kind: 'rmsprop' })).toEqual(["optimizer.kind: 'rmsprop' is not one of sgd, adam, adamw"]);
    expect(optimizerErrors({ lr: 0.1 })).toEqual(['optimizer.kind: undefined is not one of sgd, adam, adamw']);
    expect(optimizerErrors(null)).toEqual(['optimizer: null is not an object']);
  });

  it('reports every bad field', () => {
    const errors = optimizerErrors({ ...adam('adam'), beta1: 1.5, eps: 0, lr: 'fast', weight_decay: 0.1 });
    expect(errors).toEqual(expect.arrayContaining([
      "optimizer.weight_decay: unknown field 'weight_decay'",
      "optimizer.lr: 'fast' is not a finite number >= 0",
      'optimizer.beta1: 1.5 is not a finite number in [0, 1)',
      'optimizer.eps: 0 is not a finite number > 0',
    ]));
    expect(errors).toHaveLength(4);
    // A field of another kind is unknown to this one.
    expect(optimizerErrors({ ...sgd(), beta1: 0.9 })).toEqual(["optimizer.beta1: unknown field 'beta1'"]);
  });

  it('checks sgd fields, including nesterov without momentum', () => {
    expect(optimizerErrors({ ...sgd(), momentum: 0, nesterov: true })).toEqual(['optimizer.nesterov: true requires momentum > 0 (momentum is 0)']);
    expect(schemaErrors(optimizerSchema, { ...sgd(), nesterov: 'yes' }, 'cfg.opt')).toEqual(["cfg.opt.nesterov: 'yes' is not one of true, false"]);
  });

  it('fills defaults', () => {
    expect(withOptimizerDefaults(optimizerPatchSchema.parse({ kind: 'adam' }))).toEqual({ kind: 'adam', lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    expect(withOptimizerDefaults(optimizerPatchSchema.parse({ kind: 'adamw', lr: 3e-4 }))).toEqual({ ...defaultOptimizerConfig('adamw'), lr: 3e-4 });
    for (const kind of ['sgd', 'adam', 'adamw'] as const) expect(optimizerErrors(defaultOptimizerConfig(kind))).toEqual([]);
  });

  it('createOptimizer refuses invalid configs', () => {
    expect(() => createOptimizer({ ...adam('adam'), beta2: 1 }, 3)).toThrow(/optimizer.beta2: 1 is not/);
  });

  it('validates schedules', () => {
    const errors = scheduleErrors({ warmupSteps: 2.5, decay: 'exp', minLrFactor: 2, totalSteps: 0, total: 5 });
    expect(errors).toEqual(expect.arrayContaining([
      "schedule.total: unknown field 'total'",
      'schedule.warmupSteps: 2.5 is not an integer >= 0',
      "schedule.decay: 'exp' is not one of constant, cosine, linear",
      'schedule.minLrFactor: 2 is not a finite number in [0, 1]',
    ]));
    expect(errors).toHaveLength(4);

    expect(scheduleErrors({ warmupSteps: 100, decay: 'cosine', totalSteps: 100, minLrFactor: 0 })).toEqual([
      'schedule.totalSteps: 100 must be greater than warmupSteps (100) for cosine decay',
    ]);
    expect(scheduleErrors({ warmupSteps: 0, decay: 'linear', totalSteps: 1000, minLrFactor: 0 })).toEqual([]);
    // totalSteps 0 is "the whole run", checked again once the run's length resolves it (RunPlan).
    expect(scheduleErrors({ warmupSteps: 100, decay: 'linear', totalSteps: 0, minLrFactor: 0 })).toEqual([]);
  });
});

describe('convergence', () => {
  // f(x) = 0.5 * sum a_i (x_i - c_i)^2 with curvatures a_i spanning 0.1..10 (condition number 100).
  const n = 20;
  const a = Float64Array.from({ length: n }, (_, i) => 0.1 * Math.pow(100, i / (n - 1)));
  const c = Float64Array.from({ length: n }, (_, i) => 3 * Math.sin(i + 1));
  const loss = (x: Float32Array) => x.reduce((s, xi, i) => s + 0.5 * a[i] * (xi - c[i]) ** 2, 0);
  const schedule: ScheduleConfig = { warmupSteps: 20, decay: 'cosine', totalSteps: 500, minLrFactor: 0.01 };

  const cases: OptimizerConfig[] = [
    { ...defaultOptimizerConfig('sgd'), lr: 0.02 },
    { ...defaultOptimizerConfig('sgd'), lr: 0.02, nesterov: true },
    { ...defaultOptimizerConfig('adam'), lr: 0.1 },
    { ...defaultOptimizerConfig('adamw'), lr: 0.1, weightDecay: 0 },
  ];
  for (const config of cases) {
    it(`${config.kind}${config.kind === 'sgd' && config.nesterov ? ' (nesterov)' : ''} minimises a quadratic`, () => {
      const opt = createOptimizer(config, n);
      const x = new Float32Array(n);
      const g = new Float32Array(n);
      expect(loss(x)).toBeGreaterThan(100);
      for (let s = 0; s < 500; s++) {
        for (let i = 0; i < n; i++) g[i] = a[i] * (x[i] - c[i]);
        opt.step(x, g, learningRate(config.lr, schedule, s));
      }
      expect(loss(x)).toBeLessThan(1e-4);
    });
  }
});
