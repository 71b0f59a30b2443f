// `edgetrain start`, the main job, end to end on a synthetic dataset: cluster up, data prepared once,
// run created over HTTP, followed to completion, model and metrics written; bad flags refused.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCaptions } from '../../cli/embed-captions';
import { runStart } from '../../cli/start';
import { ApiError } from '../../workers/gradient/client';
import { fixtureFiles, writeFolder } from '../support/cifar-fixture';
import { BERT_VOCAB, skipWithout } from '../support/prerequisites';

const dir = mkdtempSync(path.join(tmpdir(), 'edgetrain-start-'));
const data = path.join(dir, 'cifar');
writeFolder(data, fixtureFiles(100));
const base = ['--port', '0', '--state', path.join(dir, 'state'), '--data', data, '--workers', '2', '--train-limit', '128', '--eval-batch', '50', '--quiet'];

afterAll(() => rmSync(dir, { recursive: true, force: true }));
const WITHOUT_VOCAB = skipWithout(BERT_VOCAB);

describe('edgetrain start', () => {
  it('prepares the data once, trains through the cluster and writes the model and metrics; a DANN run with --target likewise', async () => {
    const lines: string[] = [];
    const out = path.join(dir, 'run1');
    const final = await runStart([...base, '--epochs', '2', '--out', out], (s) => lines.push(s));
    expect(final.state).toBe('completed');
    expect(final.step).toBe(4);
    expect(lines.some((l) => l.includes('preparing it once'))).toBe(true);
    expect(readFileSync(path.join(out, 'model.onnx')).length).toBeGreaterThan(1_000_000);
    const metrics = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8')) as { steps: unknown[]; evals: unknown[] };
    expect(metrics.steps).toHaveLength(4);
    expect(metrics.evals).toHaveLength(2);

    // The state persists: a second run finds the dataset prepared; a DANN run prepares its shifted
    // target domain once, trains against it, evaluates it every epoch and ends with a model.
    const again: string[] = [];
    const out2 = path.join(dir, 'run2');
    const second = await runStart([...base, '--epochs', '1', '--out', out2, '--runtime', 'node', '--dann', '--target', 'contrast:2'], (s) => again.push(s));
    expect(second.state).toBe('completed');
    expect(again.filter((l) => l.includes('preparing it once'))).toEqual(['dataset cifar10-contrast-2 is not prepared in this cluster yet: preparing it once']);
    expect(second.config.targetDataset).toBe('cifar10-contrast-2');
    const dann = JSON.parse(readFileSync(path.join(out2, 'metrics.json'), 'utf8')) as { evals: { targetAccuracy?: number }[] };
    expect(dann.evals.map((e) => typeof e.targetAccuracy)).toEqual(['number']);
    expect(readFileSync(path.join(out2, 'model.onnx')).length).toBeGreaterThan(1_000_000);
    await expect(runStart([...base, '--dann', '--out', path.join(dir, 'no-target')], () => undefined)).rejects.toThrow('--dann needs --target FAMILY:SEVERITY');
  }, 240_000);

  it.skipIf(WITHOUT_VOCAB)('embeds the CIFAR-10 captions with the test BERT into the cluster\'s KV once, and a run reads them', async () => {
    const state = ['--state', path.join(dir, 'state')];
    const first = await runCaptions(['--test-model', ...state], () => undefined);
    const again = await runCaptions(['--test-model', ...state], () => undefined);
    expect('hit' in first && first.hit).toBe(false);
    expect('hit' in again && again.hit).toBe(true);
    const hash = 'entry' in first ? first.entry.key.slice('captions/'.length) : '';
    const final = await runStart([...base, '--epochs', '1', '--head', 'attention', '--captions', hash, '--out', path.join(dir, 'run3')], () => undefined);
    expect(final.state).toBe('completed');
    expect(final.config.captions).toBe(hash);
  }, 240_000);

  it('refuses a lease size that does not divide the batch, naming the field, and starts no run', async () => {
    const out = path.join(dir, 'bad');
    const error = await runStart([...base, '--epochs', '1', '--micro-batch', '48', '--out', out], () => undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).message).toContain('cluster.microBatch: 48 must divide the global batch (64)');
    expect(existsSync(out)).toBe(false);
  }, 120_000);
});
