// The Cloudflare profile end to end on real CIFAR-10: the API script and its coordinator supervising a
// fleet of two chains through the work queue, each invocation a real gradient-script process with the
// deployed settings (a shorter invocation budget and retry delay, so that a short run sees handovers
// and retries). Every chain is killed once mid-run, with its process, and a duplicate delivery is
// injected; the fleet is restored, no extra chain appears, and since gradients are deterministic the
// run ends where the single-process trainer does.
import { describe, expect, it } from 'vitest';
import { startCloudflareProfile } from '../../cli/cluster/cloudflare-profile';
import { loadCifar10 } from '../../cli/dataset';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { FINAL_STATES, type RunStatus } from '../../shared/protocol';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { ApiClient } from '../../workers/gradient/client';
import { loadOrt } from '../../workers/ort/node';
import { REAL_CIFAR10, skipWithout } from '../support/prerequisites';

const WITHOUT_REAL_CIFAR10 = skipWithout(REAL_CIFAR10);

const CONFIG: TrainConfig = {
  ...SEED_TRAIN_CONFIG,
  optimizer: { ...SEED_TRAIN_CONFIG.optimizer, lr: 1e-3 },
  epochs: 1,
  trainLimit: 2560,
  normalization: 'cifar',
};
const CHAINS = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(WITHOUT_REAL_CIFAR10)('the Cloudflare profile on real CIFAR-10', () => {
  it('every chain killed once mid-run and a duplicate delivery: the fleet is restored and the run ends as the single-process trainer does', async () => {
    const data = await loadCifar10({ path: REAL_CIFAR10.path });
    const single = (await train({ ort: await loadOrt('web', 1), data, config: CONFIG })).history[0].testAccuracy;

    const cf = await startCloudflareProfile({ workers: CHAINS, settings: { budgetMs: 8000, retryDelayS: 1 } });
    try {
      const api = new ApiClient(cf.coordinator.url, { token: cf.coordinator.token });
      await prepareDataset(api, data);
      const run = await api.createRun({ ...runRequestOf(CONFIG), cluster: { microBatch: 32, workers: CHAINS } });
      expect(run.totalSteps).toBe(40);

      const killed = new Map<string, number>();
      let duplicated = false;
      let status: RunStatus = run;
      const deadline = Date.now() + 240_000;
      while (!FINAL_STATES.includes(status.state) && Date.now() < deadline) {
        await sleep(100);
        status = await api.status(run.runId);
        const running = [...cf.broker.running()];
        // A second delivery of a chain's message, as at-least-once delivery may make.
        if (!duplicated && running.length) {
          cf.broker.push(running[0][1]);
          duplicated = true;
        }
        // One chain killed at step ≥ 8, the other at step ≥ 20: each while its invocation computes.
        if (status.step >= 8 + 12 * killed.size && killed.size < CHAINS) {
          const victim = running.find(([, m]) => !killed.has((m.body as { chain: string }).chain));
          if (victim) {
            killed.set((victim[1].body as { chain: string }).chain, status.step);
            await cf.kill(victim[0]);
          }
        }
      }
      // The invocations still running end once their next lease request hears the run is done.
      for (const until = Date.now() + 15_000; cf.broker.running().size && Date.now() < until; ) await sleep(100);
      console.log(`[Cloudflare profile] chains killed at steps ${JSON.stringify(Object.fromEntries(killed))}; deliveries ${JSON.stringify(cf.broker.history.map((h) => `${(h.message.body as { chain: string }).chain}#${h.message.attempts}:${h.result}`))}`);
      expect(status.state).toBe('completed');
      expect(status.step).toBe(40);
      expect([...killed.keys()].sort()).toEqual(['chain-0', 'chain-1']);
      // Each killed invocation failed with its process, and its retry carried the chain on.
      for (const chain of killed.keys()) {
        const deliveries = cf.broker.history.filter((h) => (h.message.body as { chain: string }).chain === chain);
        const failed = deliveries.findIndex((h) => h.result === 'failed');
        expect(failed, `${chain}: a delivery that died with its process`).toBeGreaterThanOrEqual(0);
        expect(deliveries.slice(failed + 1).some((h) => h.result === 'ack')).toBe(true);
      }
      // No extra chain: the duplicate was told to stop, and every answer came from the two chains.
      expect(status.fleet?.chains.map((c) => c.chain)).toEqual(['chain-0', 'chain-1']);
      expect(status.workers.map((w) => w.worker).sort()).toEqual(['chain-0', 'chain-1']);
      expect(Math.max(...status.fleet!.chains.map((c) => c.generation))).toBeGreaterThan(1);
      const cluster = status.testAccuracy ?? Number.NaN;
      console.log(`[Cloudflare profile] 1 epoch on 2,560 images: single process ${(100 * single).toFixed(2)}%, Cloudflare profile with every chain killed once ${(100 * cluster).toFixed(2)}%`);
      expect(single).toBeGreaterThan(0.2);
      expect(Math.abs(cluster - single)).toBeLessThanOrEqual(0.01);
    } finally {
      await cf.dispose();
    }
  }, 400_000);
});
