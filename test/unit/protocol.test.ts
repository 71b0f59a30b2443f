// POST /v1/runs bodies: the zod schema (shape, types, ranges, and the rules across fields, one issue
// per bad field) and resolveRunConfig (the defaults).
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_CONFIG, HEAD_NAMES, PRESET_NAMES } from '../../shared/models/presets';
import { DEFAULT_CLUSTER_CONFIG, resolveRunConfig, runRequestSchema, type FieldIssue, type RunConfig } from '../../shared/protocol';
import { fieldIssuesOf } from '../../shared/schema/issues';
import { SEED_TRAIN_CONFIG } from '../../shared/training/config';

/** Schema issues as the API reports them: dotted path and message. */
function schemaIssues(body: unknown): { path: string; code: string; message: string }[] {
  const r = runRequestSchema.safeParse(body);
  if (r.success) return [];
  return r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), code: i.code, message: i.message }));
}

/** Parses with the schema (which must accept `body`), then resolves. */
function resolved(body: unknown): RunConfig {
  const r = runRequestSchema.safeParse(body);
  if (!r.success) throw new Error(`expected ${JSON.stringify(body)} to resolve, got ${JSON.stringify(fieldIssuesOf(r.error))}`);
  return resolveRunConfig(r.data);
}

/** The issues the API reports for `body`, which the schema must refuse. */
function issues(body: unknown): FieldIssue[] {
  const r = runRequestSchema.safeParse(body);
  if (r.success) throw new Error(`expected ${JSON.stringify(body)} to be rejected`);
  return fieldIssuesOf(r.error);
}

describe('resolveRunConfig defaults and merging', () => {
  it('an empty body is the seed recipe on the default cluster and cifar10', () => {
    const c = resolved({});
    expect(c.train).toEqual(SEED_TRAIN_CONFIG);
    expect(c.cluster).toEqual(DEFAULT_CLUSTER_CONFIG);
    expect(c.dataset).toBe('cifar10');
    // The defaults are consistent with each other: the default shard divides the default batch.
    expect(SEED_TRAIN_CONFIG.batch % DEFAULT_CLUSTER_CONFIG.microBatch).toBe(0);
  });

  it('merges a partial model over the default model', () => {
    expect(resolved({ model: { head: 'linear' } }).train.model).toEqual({ ...DEFAULT_MODEL_CONFIG, head: 'linear' });
    expect(resolved({ model: { preset: 'res-cnn', dann: true, labelSmoothing: 0.1 }, targetDataset: 'cifar10-fog-3' }).train.model).toEqual({
      ...DEFAULT_MODEL_CONFIG,
      preset: 'res-cnn',
      dann: true,
      labelSmoothing: 0.1,
    });
  });

  it("merges a partial optimizer over its kind's defaults", () => {
    expect(resolved({ optimizer: { kind: 'sgd', lr: 0.1 } }).train.optimizer).toEqual({ kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0 });
    expect(resolved({ optimizer: { kind: 'adamw' } }).train.optimizer).toEqual({ kind: 'adamw', lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 });
    expect(resolved({ optimizer: { kind: 'adam', beta2: 0.99 } }).train.optimizer).toEqual({ kind: 'adam', lr: 1e-4, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
  });

  it('merges a partial schedule over the default, totalSteps 0 (the whole run) unless given', () => {
    expect(resolved({ schedule: { warmupSteps: 5 } }).train.schedule).toEqual({ warmupSteps: 5, decay: 'constant', totalSteps: 0, minLrFactor: 0 });
    expect(resolved({ schedule: { decay: 'linear', totalSteps: 100, minLrFactor: 0.1 } }).train.schedule).toEqual({ warmupSteps: 0, decay: 'linear', totalSteps: 100, minLrFactor: 0.1 });
  });

  it('accepts cosine or linear decay over the whole run (totalSteps omitted), as the CLI does', () => {
    // totalSteps 0 means "the whole run" (TrainConfig, trainConfigErrors, RunPlan); the CLI's `--schedule
    // cosine` builds exactly this schedule. The API must not reject it as "0 must be greater than warmupSteps".
    expect(resolved({ schedule: { decay: 'cosine' } }).train.schedule).toEqual({ warmupSteps: 0, decay: 'cosine', totalSteps: 0, minLrFactor: 0 });
    expect(resolved({ schedule: { decay: 'linear', warmupSteps: 100 } }).train.schedule).toEqual({ warmupSteps: 100, decay: 'linear', totalSteps: 0, minLrFactor: 0 });
  });

  it('carries top-level training fields, cluster fields and the dataset', () => {
    const c = resolved({
      epochs: 3,
      batch: 128,
      evalBatch: 1000,
      seed: -7,
      augment: true,
      normalization: 'cifar',
      bnMomentum: 0.01,
      trainLimit: 5000,
      shuffleBlock: 0,
      cluster: { microBatch: 16, workers: 8 },
      dataset: 'abc123',
    });
    expect(c.train).toEqual({ ...SEED_TRAIN_CONFIG, epochs: 3, batch: 128, evalBatch: 1000, seed: -7, augment: true, normalization: 'cifar', bnMomentum: 0.01, trainLimit: 5000, shuffleBlock: 0 });
    // maxWorkers follows workers: max(16, 4 × workers).
    expect(c.cluster).toEqual({ ...DEFAULT_CLUSTER_CONFIG, microBatch: 16, workers: 8, maxWorkers: 32 });
    expect(c.dataset).toBe('abc123');
  });
});

describe('runRequestSchema', () => {
  it('accepts every field at its limits', () => {
    const body = {
      model: { preset: 'seed-cnn', head: 'attention', dann: false, classes: 1000, captionsPerClass: 64, labelSmoothing: 0 },
      optimizer: { kind: 'sgd' },
      schedule: {},
      epochs: 1000,
      batch: 4096,
      evalBatch: 10_000,
      seed: 0,
      augment: false,
      normalization: 'seed',
      bnMomentum: 1,
      trainLimit: 0,
      shuffleBlock: 10_000_000,
      cluster: { microBatch: 1, leaseMs: 100, snapshotEvery: 1, workers: 1000 },
      dataset: 'x'.repeat(128),
    };
    expect(schemaIssues(body)).toEqual([]);
  });

  it('rejects unknown fields at the top level and inside model and cluster', () => {
    expect(schemaIssues({ foo: 1 })).toEqual([{ path: '', code: 'unrecognized_keys', message: expect.stringContaining('"foo"') }]);
    expect(schemaIssues({ model: { bogus: 1 } })).toEqual([{ path: 'model', code: 'unrecognized_keys', message: expect.stringContaining('"bogus"') }]);
    expect(schemaIssues({ cluster: { micro_batch: 8 } })).toEqual([{ path: 'cluster', code: 'unrecognized_keys', message: expect.stringContaining('"micro_batch"') }]);
    expect(schemaIssues({ learningRate: 0.1 })).toHaveLength(1);
  });

  it('rejects wrong types, naming the field', () => {
    const cases: [unknown, string][] = [
      [{ batch: '64' }, 'batch'],
      [{ batch: 1.5 }, 'batch'],
      [{ augment: 'yes' }, 'augment'],
      [{ seed: 0.5 }, 'seed'],
      [{ model: { dann: 1 } }, 'model.dann'],
      [{ model: 'seed-cnn' }, 'model'],
      [{ optimizer: 'adam' }, 'optimizer'],
      [{ schedule: [] }, 'schedule'],
      [{ dataset: 5 }, 'dataset'],
      [{ cluster: { workers: '2' } }, 'cluster.workers'],
    ];
    for (const [body, path] of cases) {
      const found = schemaIssues(body);
      expect(found.map((i) => [i.path, i.code]), JSON.stringify(body)).toEqual([[path, 'invalid_type']]);
    }
    expect(schemaIssues([])).toHaveLength(1);
    expect(schemaIssues(null)).toHaveLength(1);
  });

  it('rejects numbers out of range, naming the field and the bound', () => {
    const cases: [unknown, string, string][] = [
      [{ batch: 0 }, 'batch', '0 is not an integer in [1, 4096]'],
      [{ batch: 4097 }, 'batch', '[1, 4096]'],
      [{ epochs: 0 }, 'epochs', '0 is not an integer in [1, 1000]'],
      [{ epochs: 1001 }, 'epochs', '[1, 1000]'],
      [{ evalBatch: 10_001 }, 'evalBatch', '[1, 10000]'],
      [{ bnMomentum: 0 }, 'bnMomentum', '0 is not a finite number in (0, 1]'],
      [{ bnMomentum: 1.5 }, 'bnMomentum', '(0, 1]'],
      [{ trainLimit: -1 }, 'trainLimit', '[0, 10000000]'],
      [{ shuffleBlock: -1 }, 'shuffleBlock', '[0, 10000000]'],
      [{ model: { classes: 1 } }, 'model.classes', '[2, 1000]'],
      [{ model: { captionsPerClass: 65 } }, 'model.captionsPerClass', '[1, 64]'],
      [{ model: { labelSmoothing: 1 } }, 'model.labelSmoothing', '1 is not a finite number in [0, 1)'],
      [{ model: { labelSmoothing: -0.1 } }, 'model.labelSmoothing', '[0, 1)'],
      [{ cluster: { microBatch: 0 } }, 'cluster.microBatch', '[1, 4096]'],
      [{ cluster: { leaseMs: 99 } }, 'cluster.leaseMs', '[100, 3600000]'],
      [{ cluster: { workers: 1001 } }, 'cluster.workers', '[1, 1000]'],
      [{ cluster: { snapshotEvery: 0 } }, 'cluster.snapshotEvery', '[1, 1000000]'],
      [{ dataset: '' }, 'dataset', '>=1'],
      [{ dataset: 'x'.repeat(129) }, 'dataset', '<=128'],
    ];
    for (const [body, path, bound] of cases) {
      const found = schemaIssues(body);
      expect(found.map((i) => i.path), JSON.stringify(body)).toEqual([path]);
      expect(found[0].message, JSON.stringify(body)).toContain(bound);
    }
  });

  it('rejects an unknown preset, head or normalization, listing the allowed values', () => {
    const [preset] = schemaIssues({ model: { preset: 'vgg' } });
    expect(preset.path).toBe('model.preset');
    expect(preset.message).toBe(`'vgg' is not one of ${PRESET_NAMES.join(', ')}`);
    const [head] = schemaIssues({ model: { head: 'mlp' } });
    expect(head.path).toBe('model.head');
    expect(head.message).toBe(`'mlp' is not one of ${HEAD_NAMES.join(', ')}`);
    const [norm] = schemaIssues({ normalization: 'imagenet' });
    expect(norm.path).toBe('normalization');
    expect(norm.message).toBe("'imagenet' is not one of seed, cifar");
  });

  it('collects every bad field in one pass', () => {
    const found = schemaIssues({ epochs: 0, batch: 'x', model: { head: 'mlp', classes: 1 }, cluster: { leaseMs: 1 }, foo: true });
    expect(found.map((i) => i.path).sort()).toEqual(['', 'batch', 'cluster.leaseMs', 'epochs', 'model.classes', 'model.head']);
  });
});

describe('runRequestSchema issues, as the API reports them', () => {
  it('reports a bad optimizer field at its path', () => {
    expect(issues({ optimizer: { kind: 'adam', lr: -1 } })).toEqual([{ path: 'optimizer.lr', message: '-1 is not a finite number >= 0' }]);
    expect(issues({ optimizer: { kind: 'rmsprop' } })).toEqual([{ path: 'optimizer.kind', message: "'rmsprop' is not one of sgd, adam, adamw" }]);
    // kind is what decides the other fields' defaults, so it is required.
    expect(issues({ optimizer: { lr: 0.1 } })).toEqual([{ path: 'optimizer.kind', message: 'undefined is not one of sgd, adam, adamw' }]);
    expect(issues({ optimizer: { kind: 'adam', weight_decay: 0.1 } })).toEqual([
      { path: 'optimizer.weight_decay', message: "unknown field 'weight_decay'" },
    ]);
    expect(issues({ optimizer: { kind: 'sgd', momentum: 0.9, beta1: 0.9 } }).map((i) => i.path)).toEqual(['optimizer.beta1']);
    expect(issues({ optimizer: { kind: 'sgd', nesterov: true, momentum: 0 } })).toEqual([{ path: 'optimizer.nesterov', message: 'true requires momentum > 0 (momentum is 0)' }]);
  });

  it('reports one issue per bad optimizer field', () => {
    expect(issues({ optimizer: { kind: 'adam', lr: -1, beta1: 1, eps: 0 } }).map((i) => i.path)).toEqual(['optimizer.lr', 'optimizer.beta1', 'optimizer.eps']);
  });

  it('reports schedule errors at their paths', () => {
    expect(issues({ schedule: { decay: 'cosine', totalSteps: 10, warmupSteps: 10 } })).toEqual([
      { path: 'schedule.totalSteps', message: '10 must be greater than warmupSteps (10) for cosine decay' },
    ]);
    expect(issues({ schedule: { minLrFactor: 2 } })).toEqual([{ path: 'schedule.minLrFactor', message: '2 is not a finite number in [0, 1]' }]);
    expect(issues({ schedule: { decay: 'step' } })).toEqual([{ path: 'schedule.decay', message: "'step' is not one of constant, cosine, linear" }]);
    expect(issues({ schedule: { warmupSteps: 1.5 } })).toEqual([{ path: 'schedule.warmupSteps', message: '1.5 is not an integer >= 0' }]);
    expect(issues({ schedule: { total: 5 } }).map((i) => i.path)).toEqual(['schedule.total']);
  });

  it('requires cluster.microBatch to divide the global batch', () => {
    expect(issues({ cluster: { microBatch: 48 } })).toEqual([
      { path: 'cluster.microBatch', message: '48 must divide the global batch (64) so every shard has the same size' },
    ]);
    expect(issues({ cluster: { microBatch: 128 } }).map((i) => i.path)).toEqual(['cluster.microBatch']);
    expect(issues({ batch: 100, cluster: { microBatch: 32 } })[0].message).toContain('global batch (100)');
    // The default microBatch (32) against a batch it does not divide.
    expect(issues({ batch: 48 }).map((i) => i.path)).toEqual(['cluster.microBatch']);
    expect(resolved({ batch: 96 }).cluster.microBatch).toBe(32);
    expect(resolved({ batch: 8, cluster: { microBatch: 8 } }).cluster.microBatch).toBe(8);
    expect(resolved({ batch: 8, cluster: { microBatch: 1 } }).cluster.microBatch).toBe(1);
  });

  it('collects optimizer, schedule and cluster issues at once', () => {
    expect(issues({ optimizer: { kind: 'sgd', lr: -1 }, schedule: { decay: 'cosine', totalSteps: 5, warmupSteps: 10 }, cluster: { microBatch: 48 } })).toEqual([
      { path: 'optimizer.lr', message: '-1 is not a finite number >= 0' },
      { path: 'schedule.totalSteps', message: '5 must be greater than warmupSteps (10) for cosine decay' },
      { path: 'cluster.microBatch', message: '48 must divide the global batch (64) so every shard has the same size' },
    ]);
  });
});

describe('targetDataset', () => {
  it('is kept by name; a run without one has none', () => {
    expect(resolved({ targetDataset: 'cifar10-fog-3' }).targetDataset).toBe('cifar10-fog-3');
    expect('targetDataset' in resolved({})).toBe(false);
  });

  it('a DANN run without one is refused, naming targetDataset and how to make one', () => {
    const found = issues({ model: { dann: true } });
    expect(found).toEqual([{ path: 'targetDataset', message: expect.stringContaining('DANN run (model.dann) needs a target domain') }]);
    expect(found[0].message).toContain('edgetrain prepare --shift fog:3');
    expect(resolved({ model: { dann: true }, targetDataset: 'cifar10-fog-3' }).train.model.dann).toBe(true);
  });

  it('is refused empty, beside per-image captions (they are the source\'s), and reported with other fields\' issues', () => {
    expect(issues({ targetDataset: '' }).map((i) => i.path)).toEqual(['targetDataset']);
    const both = issues({ model: { head: 'concat' }, imageCaptions: 'a'.repeat(64), targetDataset: 't' });
    expect(both).toEqual([{ path: 'imageCaptions', message: expect.stringContaining("targetDataset 't'") }]);
    expect(issues({ batch: 0, model: { dann: true } }).map((i) => i.path).sort()).toEqual(['batch', 'targetDataset']);
  });
});
