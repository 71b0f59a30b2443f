// The dashboard (GET /) in headless Chromium during a live local run: the API worker and coordinator
// in workerd, two workerd gradient workers training the fixture data set. The page is opened with the
// API token in its URL fragment; while the run trains, every point the loss, accuracy and throughput
// curves plot must be the API's number for that step (GET /v1/runs/:id/metrics), with no step the
// API does not report; the test-accuracy points must be the epoch evaluations, and the workers table
// must list the gradient workers with their accepted answers and recent contributions (shards counted
// per step, from StepMetric.workers). A full-page screenshot goes to test-artifacts/dashboard.png.
// Where Chromium is missing the suite skips or fails: skipWithout(CHROMIUM).
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator, type WorkerdWorker } from '../../cli/cluster/local';
import type { RunCreated, RunRequest, RunStatus } from '../../shared/protocol';
import { ApiClient } from '../../workers/gradient/client';
import { launchChromium } from '../support/chromium';
import { CHROMIUM, skipWithout } from '../support/prerequisites';
import { prepareFixtureDataset } from '../support/fixture-dataset';

const WITHOUT_CHROMIUM = skipWithout(CHROMIUM);

const ARTIFACTS = resolve('test-artifacts');
const SCREENSHOT = resolve(ARTIFACTS, 'dashboard.png');
/** 192 fixture images, batches of 32 in two 16-image shards: 6 steps an epoch, 20 epochs, long enough to watch; cancelled once checked. */
const RUN: RunRequest = { dataset: 'fixture', trainLimit: 192, batch: 32, evalBatch: 50, epochs: 20, cluster: { microBatch: 16, leaseMs: 30_000 } };
const SHARDS = 2;

interface Point {
  step: number;
  value: string;
  epoch?: string;
}

/** The points one series plots, as its marker elements carry them. */
function points(page: Page, chart: string, series: string): Promise<Point[]> {
  return page.$$eval(`svg[data-chart="${chart}"] g[data-series="${series}"] circle`, (els) =>
    els.map((e) => ({ step: Number(e.getAttribute('data-step')), value: e.getAttribute('data-value') ?? '', ...(e.hasAttribute('data-epoch') ? { epoch: e.getAttribute('data-epoch')! } : {}) })),
  );
}

/** The page's points must be the API's values at exactly the steps it reports, a prefix of them, no others. */
function expectSeries(name: string, plotted: Point[], api: { step: number; value: number }[]) {
  expect(plotted.length, `${name}: points plotted`).toBeGreaterThan(0);
  const byStep = new Map(api.map((p) => [p.step, p.value]));
  for (const p of plotted) {
    expect(byStep.has(p.step), `${name}: step ${p.step} is not in the API's metrics`).toBe(true);
    expect(Number(p.value), `${name} at step ${p.step}`).toBe(byStep.get(p.step));
  }
  const last = plotted[plotted.length - 1].step;
  expect(plotted.map((p) => p.step), `${name}: the steps the API reports up to ${last}`).toEqual(api.filter((p) => p.step <= last).map((p) => p.step));
}

describe.skipIf(WITHOUT_CHROMIUM)('dashboard in headless Chromium during a live run', () => {
  let coordinator: LocalCoordinator;
  let workers: WorkerdWorker[] = [];
  let browser: Browser;
  let api: ApiClient;
  let run: RunCreated;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    const t0 = Date.now();
    [coordinator, browser] = await Promise.all([startCoordinator(), launchChromium()]);
    api = new ApiClient(coordinator.url, { token: coordinator.token });
    [workers] = await Promise.all([
      Promise.all([0, 1].map((index) => startWorkerdWorker({ index, apiUrl: coordinator.url }))),
      prepareFixtureDataset(api),
    ]);
    const res = await fetch(`${coordinator.url}/v1/runs`, { method: 'POST', headers: { authorization: `Bearer ${coordinator.token}`, 'content-type': 'application/json' }, body: JSON.stringify(RUN) });
    run = (await res.json()) as RunCreated;
    expect(res.status, JSON.stringify(run)).toBe(201);
    await Promise.all(workers.map((w) => w.start(run.runId, run.workerToken)));
    console.log(`dashboard test: cluster up and run ${run.runId} started in ${Date.now() - t0} ms`);
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all(workers.map((w) => w.dispose()));
    await coordinator?.dispose();
  });

  it('GET / serves the page without a token: HTML, a hash-based CSP, no caching, well under 30 KB', async () => {
    const res = await fetch(`${coordinator.url}/`);
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]{43}='/);
    expect(csp).not.toContain('unsafe-inline');
    expect(html).toContain('data-chart="loss"');
    const bytes = new TextEncoder().encode(html).byteLength;
    console.log(`dashboard page: ${bytes} bytes`);
    expect(bytes).toBeLessThan(30_000);
    // The API's reads still refuse without a token.
    expect((await fetch(`${coordinator.url}/v1/runs`)).status).toBe(401);
  });

  it('plots what the API reports while the run trains; lists the workers and their contributions; saves a screenshot', async () => {
    const started = Date.now();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
    });
    await page.goto(`${coordinator.url}/#token=${encodeURIComponent(coordinator.token)}`);
    // The token leaves the address bar for sessionStorage.
    expect(page.url()).toBe(`${coordinator.url}/`);
    expect(await page.evaluate(() => sessionStorage.getItem('edgetrain-token'))).toBe(coordinator.token);

    // The newest run is selected by default; wait for ≥ 5 loss points and the first epoch's evaluation.
    await page.waitForSelector(`#runs tr.sel[data-run="${run.runId}"]`, { timeout: 20_000 });
    await page.waitForFunction(() => document.querySelectorAll('svg[data-chart="loss"] g[data-series="loss"] circle').length >= 5, null, { timeout: 40_000, polling: 200 });
    await page.waitForFunction(() => document.querySelectorAll('svg[data-chart="accuracy"] g[data-series="test-accuracy"] circle').length >= 1, null, { timeout: 40_000, polling: 200 });
    // The workers table shows recent contributions once a poll has seen steps with them.
    await page.waitForFunction(() => Array.from(document.querySelectorAll("#workers td[data-recent]")).some((td) => Number(td.getAttribute('data-recent')) > 0), null, { timeout: 20_000, polling: 200 });

    // Read the page, then the API: the API has every step the page has, maybe more.
    const [loss, trainAcc, testAcc, throughput, testLabel] = await Promise.all([
      points(page, 'loss', 'loss'),
      points(page, 'accuracy', 'train-accuracy'),
      points(page, 'accuracy', 'test-accuracy'),
      points(page, 'throughput', 'throughput'),
      page.textContent('#test-now'),
    ]);
    const rows = await page.$$eval('#workers tbody tr[data-worker]', (trs) =>
      trs.map((tr) => ({ worker: tr.getAttribute('data-worker')!, accepted: Number(tr.querySelector('[data-accepted]')?.getAttribute('data-accepted')), recent: Number(tr.querySelector('[data-recent]')?.getAttribute('data-recent')) })),
    );
    const metrics = await api.metrics(run.runId);
    const status: RunStatus = await api.status(run.runId);
    expect(status.state, 'the run is still training when the page is checked').toBe('training');
    console.log(`dashboard: ${loss.length} loss points, ${testAcc.length} evaluation(s), API at step ${status.step}; ${rows.length} worker row(s)`);

    expect(loss.length).toBeGreaterThanOrEqual(5);
    expectSeries('loss', loss, metrics.steps.map((s) => ({ step: s.step, value: s.loss })));
    expectSeries('train accuracy', trainAcc, metrics.steps.map((s) => ({ step: s.step, value: s.accuracy })));
    expectSeries('throughput', throughput, metrics.steps.map((s) => ({ step: s.step, value: (s.images * 1000) / s.stepMs })));
    expect(trainAcc.map((p) => p.step)).toEqual(loss.map((p) => p.step));
    // Test accuracy: one point per finished evaluation, at its step, with its epoch.
    expectSeries('test accuracy', testAcc, metrics.evals.map((e) => ({ step: e.step, value: e.accuracy })));
    expect(testAcc.map((p) => Number(p.epoch))).toEqual(metrics.evals.slice(0, testAcc.length).map((e) => e.epoch));
    // The label names the evaluation's epoch as the API counts it (1-based: the first evaluation is epoch 1).
    expect(metrics.evals[0].epoch).toBe(1);
    const lastEval = metrics.evals[testAcc.length - 1];
    expect(testLabel).toBe(`${(100 * lastEval.accuracy).toFixed(2)} % (epoch ${lastEval.epoch})`);

    // Every step records whose answers it counted: all its shards, by workers the status knows.
    const known = new Set(status.workers.map((w) => w.worker));
    for (const s of metrics.steps) {
      expect(s.workers, `step ${s.step} workers`).toBeDefined();
      expect(Object.values(s.workers!).reduce((a, b) => a + b, 0), `step ${s.step}: shards counted`).toBe(SHARDS);
      for (const w of Object.keys(s.workers!)) expect(known.has(w), `step ${s.step}: worker ${w}`).toBe(true);
    }
    // The workers table: every worker with counted answers, accepted > 0 and a contribution count.
    const contributors = status.workers.filter((w) => w.accepted > 0);
    expect(contributors.length).toBeGreaterThanOrEqual(1);
    for (const w of contributors) expect(rows.map((r) => r.worker)).toContain(w.worker);
    const shown = rows.filter((r) => r.accepted > 0 && r.recent > 0);
    expect(shown.length, JSON.stringify(rows)).toBeGreaterThanOrEqual(1);
    expect(rows.reduce((n, r) => n + r.recent, 0)).toBeLessThanOrEqual(20 * SHARDS);
    // The header and the config.
    expect(await page.textContent('#state')).toBe('training');
    expect(JSON.parse((await page.textContent('#config')) ?? 'null')).toEqual(status.config);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`dashboard screenshot: ${SCREENSHOT} (checked ${Date.now() - started} ms after opening the page)`);
    expect(pageErrors, 'no script errors or CSP violations').toEqual([]);
    await page.close();
    await api.cancel(run.runId);
  });

  it('a bad token in the fragment shows an error naming the token, in the page', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${coordinator.url}/#token=not-the-token`);
    await page.waitForSelector('#error.on', { timeout: 10_000 });
    const text = (await page.textContent('#error')) ?? '';
    expect(text).toMatch(/token/i);
    expect(text).toContain('403');
    expect(page.url()).toBe(`${coordinator.url}/`);
    expect(errors).toEqual([]);
    // No run data leaked into the page.
    expect(await page.$$('#runs tbody tr[data-run]')).toHaveLength(0);
    // Another token from the form replaces it: a run's worker token shows that run (it cannot list runs).
    await page.fill('#token', run.workerToken);
    await page.click('#token-form button:not([type])');
    await page.waitForSelector(`#runs tr.sel[data-run="${run.runId}"]`, { timeout: 10_000 });
    await page.waitForSelector('#error:not(.on)', { state: 'attached', timeout: 10_000 });
    await page.waitForFunction(() => document.querySelectorAll('svg[data-chart="loss"] g[data-series="loss"] circle').length > 0, null, { timeout: 10_000 });
    await page.close();
  });

  it('a #token= link opened in an already open tab (only the fragment changes) takes the token and strips it from the address bar', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${coordinator.url}/`);
    await page.waitForSelector('#error.on', { timeout: 10_000 });
    expect(await page.textContent('#error')).toContain('401');
    // Same document: no reload, only 'hashchange'.
    const loads: string[] = [];
    page.on('load', () => loads.push(page.url()));
    await page.evaluate((t) => void (location.hash = `#token=${encodeURIComponent(t)}`), coordinator.token);
    await page.waitForFunction(() => location.hash === '', null, { timeout: 5_000 });
    expect(page.url()).toBe(`${coordinator.url}/`);
    expect(await page.evaluate(() => sessionStorage.getItem('edgetrain-token'))).toBe(coordinator.token);
    await page.waitForSelector(`#runs tr[data-run="${run.runId}"]`, { timeout: 10_000 });
    await page.waitForSelector('#error:not(.on)', { state: 'attached', timeout: 10_000 });
    expect(loads).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('with PUBLIC_READS the page works without a token', async () => {
    const open = await startCoordinator({ publicReads: true });
    try {
      const page = await browser.newPage();
      await page.goto(`${open.url}/`);
      await page.waitForSelector('#runs tbody td.mute', { timeout: 10_000 });
      expect(await page.textContent('#runs tbody')).toContain('no runs yet');
      expect(await page.getAttribute('#error', 'class')).not.toBe('on');
      await page.close();
    } finally {
      await open.dispose();
    }
  });
});

