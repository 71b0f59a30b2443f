// A target domain in the cluster (run request `targetDataset`): a DANN run trains on the target's
// unlabelled train images, and every run with a target has its test split evaluated each epoch. The
// cluster's target loss and accuracy per epoch, and its final parameters and statistics, equal the
// single-process trainer's given the same target (ghost batch = the cluster's lease size), and so
// are a DANN run's domain classifier loss and accuracy per epoch; the DANN run's model exports and runs. Refusals name the field and store no run.
//
// As in equivalence.test.ts: a coordinator per test, calls that time out after HANG_MS, one retry
// (workerd at times stops answering).
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { fetchWithTimeout } from '../../cli/target';
import { assembleCifar10, type Cifar10, type CifarSplit } from '../../shared/data/cifar';
import { trainingLayout } from '../../shared/models/compile';
import type { EvalMetric, RunRequest } from '../../shared/protocol';
import type { EpochReport } from '../../shared/training/checkpoint';
import type { TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { DEFAULT_COMPRESSION, type DilocoConfig } from '../../shared/training/communication';
import { ApiClient, ApiError } from '../../workers/gradient/client';
import { evalLine, pct, progressLine, runShape, stepLine } from '../../cli/display';
import { endLine } from '../../cli/watch';
import { loadOrt } from '../../workers/ort/node';
import { fixtureFiles } from '../support/cifar-fixture';
import { runOnce } from '../support/ort';
import { tinyTrainConfig } from '../support/tiny-run';
import { waitFinal } from '../support/wait-final';

/** A call unanswered this long means the coordinator's workerd is stuck. */
const HANG_MS = 30_000;
const MICRO_BATCH = 16;
/** Loss sums over the same graph runs, added in another order at most: float rounding. */
const ROUNDING = 1e-6;

/** The target domain: every pixel inverted (255 − x), labels kept (a DANN run never reads them). */
function inverted(split: CifarSplit): CifarSplit {
  return { ...split, images: split.images.map((v) => 255 - v) };
}

const bytesOf = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

const base = tinyTrainConfig(48);
/** bn-cnn, so that the target's own batch-norm statistics (target.<buffer>) are in play; a step of three leases per epoch. */
const BN: TrainConfig = { ...base, model: { ...base.model, preset: 'bn-cnn' }, batch: 48 };
const DANN: TrainConfig = { ...BN, model: { ...BN.model, dann: true } };

describe('a target domain in the cluster', { retry: 1 }, () => {
  let source: Cifar10;
  let target: Cifar10;
  let coordinator: LocalCoordinator;
  let api: ApiClient;

  beforeAll(() => {
    source = assembleCifar10(fixtureFiles(100), 'fixture');
    target = { ...source, train: inverted(source.train), test: inverted(source.test) };
  });

  beforeEach(async () => {
    coordinator = await startCoordinator();
    api = new ApiClient(coordinator.url, { token: coordinator.token, fetch: fetchWithTimeout(HANG_MS) });
    await prepareDataset(api, source, 'fixture', 128);
    await prepareDataset(api, target, 'fixture-inverted', 128);
  });

  afterEach(async () => {
    await coordinator?.dispose();
  });

  const request = (config: TrainConfig, extra: Partial<RunRequest> = {}): RunRequest => ({
    ...runRequestOf(config),
    dataset: 'fixture',
    targetDataset: 'fixture-inverted',
    // Eval graphs of train.evalBatch, as the trainer's Evaluator runs them: the same loss sums.
    cluster: { microBatch: MICRO_BATCH, evalGraphBatch: config.evalBatch, snapshotEvery: 1, leaseMs: 60_000 },
    ...extra,
  });

  /** A run on two workerd gradient workers, to completion: its metrics and final parameters. */
  async function clusterRun(config: TrainConfig) {
    const run = await api.createRun(request(config));
    expect(run.config.targetDataset).toBe('fixture-inverted');
    const spec = await api.spec(run.runId);
    expect(spec.targetDataset?.name).toBe('fixture-inverted');
    const workers = await Promise.all([0, 1].map((index) => startWorkerdWorker({ index, apiUrl: coordinator.url })));
    try {
      for (const w of workers) await w.start(run.runId, run.workerToken);
      const final = await waitFinal(api, run.runId);
      expect(final.state).toBe('completed');
      const metrics = await api.metrics(run.runId);
      const last = await api.params(run.runId, final.step);
      return { runId: run.runId, final, metrics, params: last.params, buffers: last.buffers };
    } finally {
      for (const w of workers) await w.dispose();
    }
  }

  async function expectTrainerEquals(config: TrainConfig, run: Awaited<ReturnType<typeof clusterRun>>) {
    const ref = await train({ ort: await loadOrt('web', 1), data: source, target, config, ghostBatch: MICRO_BATCH });
    expect(run.metrics.evals).toHaveLength(config.epochs);
    for (const [i, e] of run.metrics.evals.entries()) {
      const r = ref.history[i];
      console.log(`[dann] ${config.model.dann ? 'dann' : 'source-only'} epoch ${e.epoch}: cluster test ${e.accuracy} target ${e.targetAccuracy} (${e.targetLoss}); trainer test ${r.testAccuracy} target ${r.targetAccuracy} (${r.targetLoss})`);
      expect(e.accuracy).toBe(r.testAccuracy);
      expect(e.targetAccuracy).toBe(r.targetAccuracy);
      expect(Math.abs(e.targetLoss! - r.targetLoss!)).toBeLessThanOrEqual(ROUNDING * Math.abs(r.targetLoss!));
      expect(Math.abs(e.loss - r.testLoss)).toBeLessThanOrEqual(ROUNDING * Math.abs(r.testLoss));
      expectSameDomain(config, e, r);
    }
    // Each step of a DANN run records its domain classifier; no step of another run does.
    for (const m of run.metrics.steps) expect(m.domainAccuracy !== undefined && m.domainLoss !== undefined, `step ${m.step}`).toBe(config.model.dann);
    expect(bytesOf(run.params).equals(bytesOf(ref.params))).toBe(true);
    expect(bytesOf(run.buffers).equals(bytesOf(ref.buffers))).toBe(true);
    expect(run.final.targetAccuracy).toBe(run.metrics.evals.at(-1)!.targetAccuracy);
    // The CLI shows the target beside the test split (status, metrics, the end of a watch).
    const last = run.metrics.evals.at(-1)!;
    expect(progressLine(run.final)).toContain(`test ${pct(run.final.testAccuracy)} · target ${pct(last.targetAccuracy)}`);
    expect(runShape(run.final)).toContain('dataset fixture, target fixture-inverted');
    expect(endLine(run.final)).toContain(`target accuracy ${pct(last.targetAccuracy)} after`);
    if (!config.model.dann) {
      expect(evalLine(last)).toMatch(/test accuracy \d+\.\d\d% {2}target loss \d+\.\d{4} {2}target accuracy \d+\.\d\d%$/);
      expect('domainLoss' in run.final || 'domainAccuracy' in run.final).toBe(false);
      expect(progressLine(run.final)).not.toContain('domain');
      return;
    }
    // A DANN run's status, metrics lines and progress line show the domain classifier of the last epoch.
    expect(evalLine(last)).toMatch(/test accuracy \d+\.\d\d% {2}target loss \d+\.\d{4} {2}target accuracy \d+\.\d\d% {2}domain loss \d+\.\d\d acc \d+\.\d%$/);
    expect([run.final.domainLoss, run.final.domainAccuracy]).toEqual([last.domainLoss, last.domainAccuracy]);
    expect(progressLine(run.final)).toContain(` · target ${pct(last.targetAccuracy)} · domain loss ${last.domainLoss!.toFixed(2)} acc ${(100 * last.domainAccuracy!).toFixed(1)}% · `);
    expect(stepLine(run.metrics.steps[0])).toMatch(/ms {2}domain loss \d+\.\d\d acc \d+\.\d%$/);
  }

  /**
   * A DANN epoch's domain classifier as the trainer reports it (micro batch = its ghost batch): the
   * accuracy exactly, the loss (a mean over the same graph runs, summed in another order) to rounding;
   * another run's epochs have neither.
   */
  function expectSameDomain(config: TrainConfig, e: EvalMetric, r: EpochReport) {
    if (!config.model.dann) {
      expect('domainLoss' in e || 'domainAccuracy' in e, `epoch ${e.epoch}`).toBe(false);
      return;
    }
    console.log(`[dann] epoch ${e.epoch} domain: cluster loss ${e.domainLoss} accuracy ${e.domainAccuracy}; trainer loss ${r.domainLoss} accuracy ${r.domainAccuracy}`);
    expect(r.domainAccuracy).toBeGreaterThan(0);
    expect(e.domainAccuracy).toBe(r.domainAccuracy);
    expect(Math.abs(e.domainLoss! - r.domainLoss!)).toBeLessThanOrEqual(ROUNDING * r.domainLoss!);
  }

  it('DANN: the target train split feeds the domain classifier, its test split is evaluated with the target statistics each epoch as the trainer does; the model exports and runs', async () => {
    const layout = trainingLayout(DANN.model);
    expect(layout.buffers.some((b) => b.name.startsWith('target.'))).toBe(true);
    const run = await clusterRun(DANN);
    await expectTrainerEquals(DANN, run);
    // The target statistics moved away from the source's: the target's images did reach them.
    const sourceStats = layout.buffers.find((b) => !b.name.startsWith('target.'))!;
    const offsets = new Map<string, number>();
    let at = 0;
    for (const b of layout.buffers) {
      offsets.set(b.name, at);
      at += b.shape.reduce((n, d) => n * d, 1);
    }
    const s = offsets.get(sourceStats.name)!;
    const t = offsets.get(`target.${sourceStats.name}`)!;
    expect(run.buffers.subarray(t, t + 4)).not.toEqual(run.buffers.subarray(s, s + 4));

    const model = await api.model(run.runId);
    const out = await runOnce(model, { pixels: { data: new Float32Array(3 * 32 * 32).fill(128), dims: [1, 3, 32, 32] } });
    expect(out.logits).toHaveLength(10);
    expect(Array.from(out.logits as Float32Array).every(Number.isFinite)).toBe(true);
  }, 180_000);

  it('a source-only run with a targetDataset: the target test split is evaluated each epoch with the source statistics, as the trainer does', async () => {
    const config: TrainConfig = { ...BN, epochs: 1 };
    const run = await clusterRun(config);
    expect(run.final.targetAccuracy).not.toBeNull();
    await expectTrainerEquals(config, run);
  }, 180_000);

  it("DiLoCo (a round of 2 inner steps, each with its own target indices): the run ends with the simulating trainer's parameters and target evaluation", async () => {
    const diloco: DilocoConfig = { innerSteps: 2, outerLr: 0.7, outerMomentum: 0.9, outerNesterov: true };
    const config: TrainConfig = { ...DANN, trainLimit: 96, epochs: 1 };
    const run = await api.createRun(request(config, { cluster: { ...request(config).cluster, diloco } }));
    const worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
    try {
      await worker.start(run.runId, run.workerToken);
      const final = await waitFinal(api, run.runId);
      expect(final).toMatchObject({ state: 'completed', step: 1 });
    } finally {
      await worker.dispose();
    }
    const [e] = (await api.metrics(run.runId)).evals;
    const { params } = await api.params(run.runId, 1);
    const ref = await train({ ort: await loadOrt('web', 1), data: source, target, config, ghostBatch: MICRO_BATCH, communication: { compression: DEFAULT_COMPRESSION, diloco, workers: 1 } });
    expect(e.targetAccuracy).toBe(ref.history[0].targetAccuracy);
    expect(Math.abs(e.targetLoss! - ref.history[0].targetLoss!)).toBeLessThanOrEqual(ROUNDING * ref.history[0].targetLoss!);
    // The round's domain figures: each lease's summed over its inner steps, as the trainer's over its graph runs.
    expectSameDomain(config, e, ref.history[0]);
    expect(bytesOf(params).equals(bytesOf(ref.params))).toBe(true);
  }, 180_000);

  it('refuses a DANN run without a target, an unknown target, one with other classes and one with too few train images, naming targetDataset; no run is stored', async () => {
    const before = (await api.listRuns()).runs.length;
    const refusal = async (body: RunRequest) => {
      const e = await api.createRun(body).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ApiError);
      expect((e as ApiError).status).toBe(400);
      const issue = (e as ApiError).body.issues?.find((i) => i.path === 'targetDataset');
      expect(issue, JSON.stringify((e as ApiError).body)).toBeDefined();
      return { ...(e as ApiError).body, message: issue!.message };
    };
    const { targetDataset: _, ...noTarget } = request(DANN);
    const missing = await refusal(noTarget);
    expect(missing.reason).toBe('config');
    expect(missing.message).toContain('edgetrain prepare --shift fog:3');

    const unknown = await refusal(request(DANN, { targetDataset: 'fixture-fog-3' }));
    expect(unknown.reason).toBe('dataset');
    expect(unknown.error).toBe("dataset 'fixture-fog-3' is not prepared: run `edgetrain prepare` with that name first");

    const renamed = { ...target, classes: target.classes.map((c, i) => (i === 0 ? 'aeroplane' : c)) };
    await prepareDataset(api, renamed, 'fixture-renamed', 128);
    expect((await refusal(request(BN, { targetDataset: 'fixture-renamed' }))).message).toContain('must name the same classes');

    const small = assembleCifar10(fixtureFiles(10), 'small');
    await prepareDataset(api, { ...small, train: inverted(small.train), test: inverted(small.test) }, 'fixture-small', 128);
    expect((await refusal(request({ ...DANN, trainLimit: 96 }, { targetDataset: 'fixture-small' }))).message).toContain('has 50 train images, fewer than the 96 source images');
    // Without DANN, the target's train split is never read: a small one is fine.
    expect((await api.createRun(request(BN, { targetDataset: 'fixture-small' }))).state).toBe('created');

    expect((await api.listRuns()).runs.length).toBe(before + 1);
  }, 60_000);
});
