// Real CIFAR-10 through the local cluster: the same test accuracy as the single-process trainer for the
// same preset, config and epochs, and the same again from the exported model run by onnxruntime alone.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadCifar10 } from '../../cli/dataset';
import { startCoordinator, startWorkerdWorker } from '../../cli/cluster/local';
import { prepareDataset } from '../../cli/prepare';
import { runRequestOf } from '../../cli/start';
import { FINAL_STATES } from '../../shared/protocol';
import { SEED_TRAIN_CONFIG, type TrainConfig } from '../../shared/training/config';
import { train } from '../../shared/training/trainer';
import { ApiClient } from '../../workers/gradient/client';
import { loadOrt } from '../../workers/ort/node';
import { REAL_CIFAR10, skipWithout } from '../support/prerequisites';

const run_ = promisify(execFile);

const WITHOUT_REAL_CIFAR10 = skipWithout(REAL_CIFAR10);

const CONFIG: TrainConfig = {
  ...SEED_TRAIN_CONFIG,
  optimizer: { ...SEED_TRAIN_CONFIG.optimizer, lr: 1e-3 },
  epochs: 1,
  trainLimit: 5000,
  normalization: 'cifar',
};

describe.skipIf(WITHOUT_REAL_CIFAR10)('real CIFAR-10 through the local cluster', () => {
  it('one epoch on 5,000 images: cluster and single-process test accuracy agree within 1 point, well above chance; the exported model reproduces the cluster\'s', async () => {
    const data = await loadCifar10({ path: REAL_CIFAR10.path });
    const reference = await train({ ort: await loadOrt('web', 1), data, config: CONFIG });
    const single = reference.history[0].testAccuracy;

    const coordinator = await startCoordinator();
    const workers = await Promise.all([0, 1].map((index) => startWorkerdWorker({ index, apiUrl: coordinator.url })));
    try {
      const api = new ApiClient(coordinator.url, { token: coordinator.token });
      await prepareDataset(api, data);
      const run = await api.createRun({ ...runRequestOf(CONFIG), cluster: { microBatch: 32 } });
      for (const w of workers) await w.start(run.runId, run.workerToken);
      let status = await api.status(run.runId);
      while (!FINAL_STATES.includes(status.state)) {
        await new Promise((r) => setTimeout(r, 250));
        status = await api.status(run.runId);
      }
      const cluster = status.testAccuracy ?? Number.NaN;
      console.log(`[real CIFAR-10] 1 epoch on 5,000 images: single process ${(100 * single).toFixed(2)}%, cluster (2 workerd workers) ${(100 * cluster).toFixed(2)}%`);
      expect(status.state).toBe('completed');
      expect(single).toBeGreaterThan(0.3);
      expect(Math.abs(cluster - single)).toBeLessThanOrEqual(0.01);

      // The exported model, run by onnxruntime alone (examples/classify.mjs imports nothing of ours) on
      // the official test_batch.bin, reproduces the test accuracy the run reported.
      const dir = await mkdtemp(path.join(tmpdir(), 'edgetrain-export-'));
      await writeFile(path.join(dir, 'model.onnx'), await api.model(run.runId));
      await run_('tar', ['-xzf', REAL_CIFAR10.path, '-C', dir, 'cifar-10-batches-bin/test_batch.bin']);
      const { stdout } = await run_(process.execPath, ['examples/classify.mjs', path.join(dir, 'model.onnx'), path.join(dir, 'cifar-10-batches-bin', 'test_batch.bin'), '--all']);
      console.log(`[real CIFAR-10] exported model with onnxruntime: ${stdout.trim()}; the run reported ${cluster.toFixed(4)}`);
      const [, correct, total] = /\((\d+) of (\d+) images\)/.exec(stdout)!;
      expect(Number(total)).toBe(10_000);
      expect(Number(correct)).toBe(Math.round(cluster * 10_000));
      await rm(dir, { recursive: true, force: true });
    } finally {
      for (const w of workers) await w.dispose();
      await coordinator.dispose();
    }
  }, 300_000);
});
