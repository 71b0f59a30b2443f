// The browser worker page as the deployment serves it: built as the API Worker's static assets
// (buildDeployAssets, what `npm run build:browser` writes to dist/assets/), served by the local
// cluster's API Worker (Miniflare's assets, as wrangler.toml's [assets]), not by the CLI. Opened from a
// run's join link (`<api>/worker/#run=…&token=…`, no API URL in it), the page reaches the API on its
// own origin, runs on ORT's WASM build (the only one shipped) and has its answers accepted.
// Where Chromium is missing the suite skips or fails: skipWithout(CHROMIUM).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSET_FILE_LIMIT, buildDeployAssets, joinLink, oversized } from '../../cli/cluster/deploy-assets';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import { FINAL_STATES, type RunStatus } from '../../shared/protocol';
import { ApiClient } from '../../workers/gradient/client';
import { launchChromium } from '../support/chromium';
import { CHROMIUM, skipWithout } from '../support/prerequisites';
import { prepareFixtureDataset } from '../support/fixture-dataset';

describe.skipIf(skipWithout(CHROMIUM))('the browser worker page served by the API Worker (static assets)', () => {
  let dir: string;
  let coordinator: LocalCoordinator;
  let browser: Browser;
  let api: ApiClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgetrain-assets-'));
    const assets = await buildDeployAssets(join(dir, 'assets'));
    [coordinator, browser] = await Promise.all([startCoordinator({ assets }), launchChromium()]);
    api = new ApiClient(coordinator.url, { token: coordinator.token });
    await prepareFixtureDataset(api);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await coordinator?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves /worker/ with COOP/COEP, the WASM build and not the WebGPU one, and leaves /v1/* and / to the Worker', async () => {
    const page = await fetch(`${coordinator.url}/worker/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(page.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(await page.text()).toContain('<meta name="edgetrain-api" content="same-origin" />');
    const wasm = await fetch(`${coordinator.url}/worker/ort-wasm-simd-threaded.wasm`, { method: 'HEAD' });
    expect(wasm.status).toBe(200);
    expect(Number(wasm.headers.get('content-length'))).toBeLessThanOrEqual(ASSET_FILE_LIMIT);
    expect((await fetch(`${coordinator.url}/worker/ort-wasm-simd-threaded.asyncify.wasm`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${coordinator.url}/v1/health`)).status).toBe(200);
    expect((await fetch(`${coordinator.url}/`)).headers.get('content-type')).toMatch(/text\/html/);
    expect(oversized(join(dir, 'assets'))).toEqual([]);
  });

  it("a run's join link opens the page on the API's origin; it joins as the run's only worker, on WASM, and the run completes on its answers", async () => {
    const run = await api.createRun({ dataset: 'fixture', trainLimit: 32, batch: 32, evalBatch: 100, epochs: 1, cluster: { microBatch: 32, leaseMs: 60_000 } });
    const link = joinLink(coordinator.url, run.runId, run.workerToken);
    expect(link).toBe(`${coordinator.url}/worker/#run=${run.runId}&token=${encodeURIComponent(run.workerToken)}`);
    const context = await browser.newContext();
    const page = await context.newPage();
    const console_: string[] = [];
    page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
    try {
      await page.goto(link);
      await page.waitForFunction(() => window.edgetrainWorker?.done === true, undefined, { timeout: 40_000, polling: 250 }).catch(async (e: unknown) => {
        throw new Error(`the page did not finish: ${String(e)}\nstate: ${JSON.stringify(await page.evaluate(() => window.edgetrainWorker))}\n${console_.join('\n')}`);
      });
      const state = await page.evaluate(() => window.edgetrainWorker);
      expect(state.error, state.log.join('\n')).toBeNull();
      expect(state.ep).toBe('wasm');
      expect(state.webgpuUnavailable).toMatch(/without ORT's WebGPU build/);
      expect(state.reason).toBe('done');
      expect(state.accepted).toBeGreaterThanOrEqual(2);
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
      let status: RunStatus = await api.status(run.runId);
      for (const until = Date.now() + 10_000; !FINAL_STATES.includes(status.state) && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 200));
        status = await api.status(run.runId);
      }
      expect(status.state, status.error).toBe('completed');
      const workers = status.workers.filter((w) => w.accepted > 0);
      expect(workers).toHaveLength(1);
      expect(workers[0].worker).toMatch(/^w-[0-9a-f]{16}$/);
    } finally {
      await context.close();
    }
  }, 50_000);
});
