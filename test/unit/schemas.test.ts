// One source for every config bound: the HTTP run request, the trainer's check and the CLI flags must
// accept and refuse the same values. The probes are read from the trainer's schema (each numeric
// field's bounds, a value just inside and just outside each), so a bound re-declared anywhere else
// with another value fails here.
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { trainConfigFromValues } from '../../cli/config-flags';
import { clusterFromValues } from '../../cli/run-flags';
import { defaultOptimizerConfig, optimizerSchema, type OptimizerKind } from '../../shared/optim/config';
import { clusterConfigFields, runRequestSchema } from '../../shared/protocol';
import { fieldIssuesOf } from '../../shared/schema/issues';
import { SEED_TRAIN_CONFIG, trainConfigErrors, trainConfigFields, type TrainConfig } from '../../shared/training/config';
import { compressionFields, dilocoFields } from '../../shared/training/communication-fields';

interface Probe {
  readonly value: number;
  readonly inside: boolean;
}

interface BoundCheck {
  readonly check: 'greater_than' | 'less_than';
  readonly value: number;
  readonly inclusive: boolean;
}

/** Values just inside and just outside each bound of a numeric schema (none for other schemas). */
function probes(schema: z.ZodType): Probe[] {
  const def = schema._zod.def as { type: string; format?: string; checks?: { _zod: { def: BoundCheck } }[] };
  if (def.type !== 'number') return [];
  const integer = def.format === 'safeint';
  const step = integer ? 1 : 1e-9;
  const found = (def.checks ?? []).map((c) => c._zod.def).filter((c) => c.check === 'greater_than' || c.check === 'less_than');
  return found.flatMap(({ check, value, inclusive }) => {
    const outward = check === 'greater_than' ? -step : step;
    const inside = inclusive ? value : value - outward;
    const out = inclusive ? value + outward : value;
    return [{ value: inside, inside: true }, { value: out, inside: false }, ...(integer ? [{ value: inside - outward / 2, inside: false }] : [])];
  });
}

interface Case {
  /** Dotted path of the field, as issues name it. */
  readonly path: string;
  readonly value: number;
  readonly inside: boolean;
  /** The request body with just this field set. */
  readonly request: unknown;
  /** The seed recipe with this field set. */
  readonly config: TrainConfig;
}

const ALL_KINDS: readonly OptimizerKind[] = ['sgd', 'adam', 'adamw'];

function cases(): Case[] {
  const out: Case[] = [];
  const { model, optimizer: _o, schedule, ...top } = trainConfigFields.shape;
  for (const [field, schema] of Object.entries(top)) {
    for (const p of probes(schema)) out.push({ path: field, ...p, request: { [field]: p.value }, config: { ...SEED_TRAIN_CONFIG, [field]: p.value } });
  }
  for (const [field, schema] of Object.entries(model.shape)) {
    for (const p of probes(schema)) out.push({ path: `model.${field}`, ...p, request: { model: { [field]: p.value } }, config: { ...SEED_TRAIN_CONFIG, model: { ...SEED_TRAIN_CONFIG.model, [field]: p.value } } });
  }
  for (const [field, schema] of Object.entries(schedule.shape)) {
    for (const p of probes(schema)) out.push({ path: `schedule.${field}`, ...p, request: { schedule: { [field]: p.value } }, config: { ...SEED_TRAIN_CONFIG, schedule: { ...SEED_TRAIN_CONFIG.schedule, [field]: p.value } } });
  }
  for (const kind of ALL_KINDS) {
    const option = optimizerSchema.options.find((o) => o.shape.kind.safeParse(kind).success)!;
    for (const [field, schema] of Object.entries(option.shape)) {
      for (const p of probes(schema as z.ZodType)) {
        const optimizer = { ...defaultOptimizerConfig(kind), [field]: p.value };
        out.push({ path: `optimizer.${field}`, ...p, request: { optimizer: { kind, [field]: p.value } }, config: { ...SEED_TRAIN_CONFIG, optimizer } as TrainConfig });
      }
    }
  }
  return out;
}

const refusesAt = (paths: readonly string[], path: string) => paths.includes(path);

function requestRefuses(request: unknown, path: string): boolean {
  const r = runRequestSchema.safeParse(request);
  return !r.success && refusesAt(fieldIssuesOf(r.error).map((i) => i.path), path);
}

const trainerRefuses = (config: TrainConfig, path: string) => refusesAt(trainConfigErrors(config).map((e) => e.slice(0, e.indexOf(':'))), path);

describe('one source for every bound', () => {
  const all = cases();

  it('probes every bounded field of the training config', () => {
    const fields = new Set(all.map((c) => c.path));
    for (const f of ['epochs', 'batch', 'evalBatch', 'bnMomentum', 'trainLimit', 'shuffleBlock', 'model.classes', 'model.captionsPerClass', 'model.labelSmoothing', 'schedule.warmupSteps', 'schedule.totalSteps', 'schedule.minLrFactor', 'optimizer.lr', 'optimizer.momentum', 'optimizer.beta1', 'optimizer.beta2', 'optimizer.eps', 'optimizer.weightDecay']) {
      expect(fields.has(f), f).toBe(true);
    }
  });

  it('the HTTP run request and the trainer accept and refuse the same values', () => {
    const disagreements = all.filter((c) => requestRefuses(c.request, c.path) !== trainerRefuses(c.config, c.path) || trainerRefuses(c.config, c.path) === c.inside);
    expect(disagreements.map((c) => `${c.path}=${c.value} (${c.inside ? 'inside' : 'outside'}): request ${requestRefuses(c.request, c.path) ? 'refuses' : 'accepts'}, trainer ${trainerRefuses(c.config, c.path) ? 'refuses' : 'accepts'}`)).toEqual([]);
  });

  it('the CLI flags of the training config agree with the trainer', () => {
    const flags: Record<string, string> = { epochs: 'epochs', batch: 'batch', evalBatch: 'eval-batch', trainLimit: 'train-limit', shuffleBlock: 'shuffle-block', 'model.labelSmoothing': 'label-smoothing', 'schedule.warmupSteps': 'warmup' };
    const wrong = all.filter((c) => c.path in flags).filter((c) => {
      let refused = false;
      try {
        trainConfigFromValues({ [flags[c.path]]: String(c.value) });
      } catch {
        refused = true;
      }
      return refused !== trainerRefuses(c.config, c.path);
    });
    expect(wrong.map((c) => `--${flags[c.path]} ${c.value}`)).toEqual([]);
  });

  it('the CLI cluster flags and the HTTP request accept and refuse the same values', () => {
    const flags: Record<string, string> = { microBatch: 'micro-batch', graphBatch: 'graph-batch', evalGraphBatch: 'eval-graph-batch', leaseMs: 'lease-ms', commitEvery: 'commit-every', snapshotEvery: 'snapshot-every', workers: 'workers', aggregators: 'aggregators', maxWorkers: 'max-workers', verifyRate: 'verify-rate', verifyTolerance: 'verify-tolerance', trim: 'trim' };
    const wrong: string[] = [];
    const { aggregation, compression, diloco, ...numeric } = clusterConfigFields.shape;
    for (const value of ['mean', 'median', 'trimmed-mean', 'avg', 'Median']) {
      let cliRefuses = false;
      try {
        clusterFromValues({ aggregation: value });
      } catch {
        cliRefuses = true;
      }
      const httpRefuses = requestRefuses({ cluster: { aggregation: value } }, 'cluster.aggregation');
      if (cliRefuses !== httpRefuses || httpRefuses === aggregation.safeParse(value).success) wrong.push(`aggregation=${value}: cli ${cliRefuses ? 'refuses' : 'accepts'}, http ${httpRefuses ? 'refuses' : 'accepts'}`);
    }
    for (const [field, schema] of Object.entries(numeric)) {
      expect(probes(schema).length, field).toBeGreaterThan(0);
      for (const p of probes(schema)) {
        let cliRefuses = false;
        try {
          clusterFromValues({ [flags[field]]: String(p.value) });
        } catch {
          cliRefuses = true;
        }
        // Sizes for which the rules across fields (microBatch divides batch, graphBatch divides microBatch,
        // at most one aggregator per shard: 256 shards of 16) hold.
        const request = { batch: 4096, cluster: { microBatch: field === 'aggregators' ? 16 : 4096, [field]: p.value } };
        const httpRefuses = requestRefuses(request, `cluster.${field}`);
        if (cliRefuses !== httpRefuses || httpRefuses === p.inside) wrong.push(`${field}=${p.value}: cli ${cliRefuses ? 'refuses' : 'accepts'}, http ${httpRefuses ? 'refuses' : 'accepts'}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the CLI communication flags and the HTTP request accept and refuse the same values', () => {
    const wrong: string[] = [];
    const numeric: [group: 'compression' | 'diloco', field: string, flag: string, schema: z.ZodType][] = [
      ['compression', 'topK', 'top-k', compressionFields.shape.topK],
      ['compression', 'momentumCorrection', 'momentum-correction', compressionFields.shape.momentumCorrection],
      ['diloco', 'innerSteps', 'diloco', dilocoFields.shape.innerSteps],
      ['diloco', 'outerLr', 'outer-lr', dilocoFields.shape.outerLr],
      ['diloco', 'outerMomentum', 'outer-momentum', dilocoFields.shape.outerMomentum],
    ];
    const sgd = { kind: 'sgd', momentum: 0 };
    for (const [group, field, flag, schema] of numeric) {
      expect(probes(schema).length, field).toBeGreaterThan(0);
      for (const p of probes(schema)) {
        let cliRefuses = false;
        try {
          clusterFromValues({ [flag]: String(p.value) });
        } catch {
          cliRefuses = true;
        }
        const httpRefuses = requestRefuses({ optimizer: sgd, cluster: { [group]: { [field]: p.value } } }, `cluster.${group}.${field}`);
        if (cliRefuses !== httpRefuses || httpRefuses === p.inside) wrong.push(`${group}.${field}=${p.value}: cli ${cliRefuses ? 'refuses' : 'accepts'}, http ${httpRefuses ? 'refuses' : 'accepts'}`);
      }
    }
    for (const [flag, field, values] of [
      ['gradients', 'gradients', ['fp32', 'fp16', 'int8', 'topk', 'int4', 'FP16']],
      ['param-codec', 'params', ['fp32', 'fp16', 'int8', 'topk', 'bf16']],
    ] as const) {
      for (const value of values) {
        let cliRefuses = false;
        try {
          clusterFromValues({ [flag]: value });
        } catch {
          cliRefuses = true;
        }
        const httpRefuses = requestRefuses({ cluster: { compression: { [field]: value } } }, `cluster.compression.${field}`);
        const valid = compressionFields.shape[field].safeParse(value).success;
        if (cliRefuses !== httpRefuses || httpRefuses === valid) wrong.push(`${field}=${value}: cli ${cliRefuses ? 'refuses' : 'accepts'}, http ${httpRefuses ? 'refuses' : 'accepts'}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('careless input', () => {
  const issues = (body: unknown) => {
    const r = runRequestSchema.safeParse(body);
    return r.success ? [] : fieldIssuesOf(r.error);
  };

  it('refuses unknown fields at every depth, __proto__ included', () => {
    expect(issues({ optimizer: { kind: 'adam', momentum: 0.9 } })).toEqual([{ path: 'optimizer.momentum', message: "unknown field 'momentum'" }]);
    expect(issues({ schedule: { warmup: 5 } })).toEqual([{ path: 'schedule.warmup', message: "unknown field 'warmup'" }]);
    expect(issues(JSON.parse('{"__proto__": {"epochs": 1}}'))).toEqual([{ path: '__proto__', message: "unknown field '__proto__'" }]);
    expect(issues(JSON.parse('{"model": {"__proto__": {"classes": 3}}}'))).toEqual([{ path: 'model.__proto__', message: "unknown field '__proto__'" }]);
    expect(trainConfigErrors({ ...SEED_TRAIN_CONFIG, lr: 0.1 } as TrainConfig)).toEqual(["lr: unknown field 'lr'"]);
  });

  it('reports a rule across fields alongside the fields’ own problems, once the fields it reads are valid', () => {
    expect(issues({ epochs: 0, cluster: { microBatch: 48 } }).map((i) => i.path)).toEqual(['epochs', 'cluster.microBatch']);
    // The batch is bad, so whether microBatch divides it is not asked.
    expect(issues({ batch: 'x', cluster: { microBatch: 48 } }).map((i) => i.path)).toEqual(['batch']);
    expect(issues({ optimizer: { kind: 'sgd', momentum: 0, nesterov: true }, schedule: { decay: 'linear', warmupSteps: 5, totalSteps: 5 } }).map((i) => i.path)).toEqual([
      'optimizer.nesterov',
      'schedule.totalSteps',
    ]);
  });
});
