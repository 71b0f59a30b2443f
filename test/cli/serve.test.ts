// `edgetrain start --serve`: the local cluster without a run, serving until Ctrl-C. A run created with
// `edgetrain run` from the cluster's folder (no URL or token given: both found through the state) gets
// the cluster's workers on its own and completes; Ctrl-C stops the cluster and exits 130.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prepareDataset } from '../../cli/prepare';
import { assembleCifar10 } from '../../shared/data/cifar';
import { ApiClient } from '../../workers/gradient/client';
import { fixtureFiles } from '../support/cifar-fixture';
import { cli, oneLine, spawnCli, waitForOutput, type CliProcess } from './spawn';

const dir = mkdtempSync(path.join(tmpdir(), 'edgetrain-serve-'));
const state = path.join(dir, '.edgetrain', 'state');
let serve: CliProcess | undefined;

afterAll(async () => {
  if (serve && serve.exitCode === null && serve.signalCode === null) {
    serve.kill('SIGINT');
    const killer = setTimeout(() => serve?.kill('SIGKILL'), 10_000);
    await serve.result;
    clearTimeout(killer);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('edgetrain start --serve', () => {
  it('refuses run options, which belong to `edgetrain run` (exit 2)', async () => {
    const [r, help] = await Promise.all([cli(['start', '--serve', '--epochs', '2'], { cwd: dir }), cli(['help', 'start'], { cwd: dir })]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}--serve {16}start the cluster without a run and serve until Ctrl-C/m);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('edgetrain start: --serve starts no run, so --epochs has no use: give run options to `edgetrain run` — see `edgetrain start --help`');
    expect(oneLine(r.stderr)).toBe(true);
    expect(existsSync(state)).toBe(false);
  });

  it('serves until Ctrl-C and launches its workers on every run created on it', async () => {
    serve = spawnCli(['start', '--serve', '--port', '0', '--workers', '1'], { cwd: dir });
    const [, url] = await waitForOutput(serve, /^serving at (http:\/\/127\.0\.0\.1:\d+) until Ctrl-C; the cluster's 1 worker\(s\) join every run created on it$/m, 90_000);
    const tokenFile = path.join(state, 'api-token');
    expect(serve.output()).toContain(`  token: ${tokenFile}\n`);
    expect(serve.output()).toContain('  create a run:   edgetrain run --epochs 2 --watch   (from this folder: the URL and token are found through the state)\n');
    expect(serve.output()).toContain('dataset cifar10 is not prepared here yet: `edgetrain prepare` uploads it (once)');
    expect(JSON.parse(readFileSync(path.join(state, 'server.json'), 'utf8'))).toEqual({ url, pid: serve.pid });
    const token = readFileSync(tokenFile, 'utf8').trim();
    await prepareDataset(new ApiClient(url, { token }), assembleCifar10(fixtureFiles(100), 'fixture'), 'fixture', 128);

    // From the cluster's folder, with no URL or token anywhere: the state's server.json and api-token.
    const run = await cli(['run', '--dataset', 'fixture', '--train-limit', '128', '--batch', '64', '--eval-batch', '50', '--epochs', '1', '--micro-batch', '32', '--watch'], { cwd: dir });
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const runId = /^run (\S+) created: /m.exec(run.stdout)?.[1];
    expect(run.stdout).toContain(`  status:  ${url}/v1/runs/${runId}`);
    expect(run.stdout.trim().split('\n').pop()).toMatch(new RegExp(`^run ${runId} completed: test accuracy \\d+\\.\\d\\d% after 2 steps$`));
    await waitForOutput(serve, new RegExp(`^run ${runId} \\(created\\): 1 gradient worker\\(s\\) launched$`, 'm'), 1000);
    await waitForOutput(serve, new RegExp(`^run ${runId} completed$`, 'm'), 10_000);

    // A second cluster on the same state is refused (two workerd processes must not share its SQLite).
    const second = await cli(['start', '--serve', '--port', '0', '--workers', '1'], { cwd: dir });
    expect(second.code).toBe(1);
    expect(second.stderr.trim()).toBe(`a local cluster already serves ${state} at ${url}: use it (\`edgetrain run\`, \`edgetrain status\`), or stop it first`);

    serve.kill('SIGINT');
    const stopped = await serve.result;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toBe('');
    expect(existsSync(path.join(state, 'server.json'))).toBe(false);
    // Stopped: the same command now says the cluster is not running.
    const after = await cli(['runs'], { cwd: dir });
    expect(after.code).toBe(3);
    expect(after.stderr).toContain('cannot reach http://127.0.0.1:8787: connection refused (ECONNREFUSED) — is the local cluster running (`edgetrain start --serve`)?');
  }, 180_000);
});
