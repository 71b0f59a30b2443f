// The `edgetrain` CLI as a user runs it: every command in a child process against one coordinator (the
// real Worker bundle in Miniflare) with a prepared fixture dataset; the target and token come from the
// environment (EDGETRAIN_URL/EDGETRAIN_TOKEN) or a config file. Each command's success and its failures
// are pinned by exit code and message; errors are one line without a stack trace.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, startWorkerdWorker, type LocalCoordinator, type WorkerdWorker } from '../../cli/cluster/local';
import type { RunMetrics, RunStatus } from '../../shared/protocol';
import { ApiClient } from '../../workers/gradient/client';
import { fixtureFiles, writeFolder } from '../support/cifar-fixture';
import { cli, oneLine, spawnCli, waitForOutput } from './spawn';
import { prepareFixtureDataset } from '../support/fixture-dataset';

/** 2 steps of 2 shards and one eval epoch: seconds of compute. */
const SMALL = ['--dataset', 'fixture', '--train-limit', '128', '--batch', '64', '--eval-batch', '50', '--epochs', '1', '--micro-batch', '32'];

/** A port nothing listens on (fetch refuses some low ports outright, so not 1 or 9). */
const closedPort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

let coordinator: LocalCoordinator;
let api: ApiClient;
let env: Record<string, string>;
const tmp = mkdtempSync(path.join(tmpdir(), 'edgetrain-cli-'));
const disposers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  coordinator = await startCoordinator();
  api = new ApiClient(coordinator.url, { token: coordinator.token });
  await prepareFixtureDataset(api);
  env = { EDGETRAIN_URL: coordinator.url, EDGETRAIN_TOKEN: coordinator.token };
});

afterAll(async () => {
  for (const d of disposers) await d().catch(() => undefined);
  await coordinator?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** `edgetrain run SMALL…`: the new run's id and worker token, from its output. */
async function createRun(extra: string[] = []): Promise<{ runId: string; workerToken: string; stdout: string }> {
  const r = await cli(['run', ...SMALL, ...extra], { env });
  expect(r.code, r.stderr).toBe(0);
  const runId = /^run (r[0-9a-z-]+) created: seed-cnn\/align, 1 epoch\(s\) of 2 steps, global batch 64 in shards of 32, dataset fixture$/m.exec(r.stdout)?.[1];
  // Piped stdout: the line says how to add a worker without the worker token itself.
  const workers = /^ {2}workers: EDGETRAIN_TOKEN=<its worker token, shown on a terminal or with --json; or the API token> edgetrain worker --url (\S+) --run (\S+)$/m.exec(r.stdout);
  expect(runId, r.stdout).toBeDefined();
  expect(workers?.[1]).toBe(coordinator.url);
  expect(workers?.[2]).toBe(runId);
  return { runId: runId!, workerToken: await api.workerToken(runId!), stdout: r.stdout };
}

describe('help and usage errors', () => {
  it('prints the command list for --help and help (exit 0), through the package executable too', async () => {
    const [help, bin] = await Promise.all([cli(['help']), cli(['--help'], { bin: true })]);
    for (const r of [help, bin]) {
      expect(r.code, r.stderr).toBe(0);
      for (const c of ['start', 'prepare', 'captions', 'run', 'runs', 'status', 'metrics', 'cancel', 'resume', 'export', 'worker', 'train', 'gradcheck']) {
        expect(r.stdout).toMatch(new RegExp(`^  ${c} +\\S`, 'm'));
      }
      expect(r.stdout).toContain('5 unknown run');
      expect(r.stderr).toBe('');
    }
  });

  it('prints one command\'s usage for COMMAND --help and help COMMAND (exit 0)', async () => {
    const [status, helpStatus, metrics] = await Promise.all([cli(['status', '--help']), cli(['help', 'status']), cli(['metrics', '-h'])]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^edgetrain status ID \[options\]/);
    expect(status.stdout).toContain('0 completed, 1 failed, 3 cancelled');
    expect(status.stdout).toContain('--url URL');
    expect(helpStatus).toEqual(status);
    expect(metrics.code).toBe(0);
    expect(metrics.stdout).toContain('--since STEP');
    expect(metrics.stdout).toContain('--follow');
  });

  it('refuses an unknown command, an unknown flag, a missing argument and a bad value with exit 2 and one line', async () => {
    const [command, flag, missing, value, before] = await Promise.all([
      cli(['statsu', 'x']),
      cli(['status', 'r1', '--wach'], { env }),
      cli(['export'], { env }),
      cli(['metrics', 'r1', '--since', 'soon'], { env }),
      cli(['--url', 'http://x', 'runs']),
    ]);
    for (const r of [command, flag, missing, value, before]) {
      expect(r.code, r.stderr).toBe(2);
      expect(oneLine(r.stderr), r.stderr).toBe(true);
      expect(r.stdout).toBe('');
    }
    expect(command.stderr.trim()).toBe("edgetrain: unknown command 'statsu' (did you mean 'status'?) — see `edgetrain --help`");
    expect(flag.stderr.trim()).toBe("edgetrain status: Unknown option '--wach' (did you mean --watch?) — see `edgetrain status --help`");
    expect(missing.stderr.trim()).toBe('edgetrain export: missing ID — see `edgetrain export --help`');
    expect(value.stderr.trim()).toBe("edgetrain metrics: --since: 'soon' is not a number — see `edgetrain metrics --help`");
    expect(before.stderr).toContain("'--url' before a command: options go after it");
  });
});

describe('runs on the API', () => {
  let runA: { runId: string; workerToken: string };
  let worker: WorkerdWorker;

  it('run: creates a run and prints its id, status URL and how to add a worker', async () => {
    runA = await createRun();
    const status = await api.status(runA.runId);
    expect(status.state).toBe('created');
    expect(status.config.train.trainLimit).toBe(128);
    expect(status.config.cluster.microBatch).toBe(32);
    const { stdout } = await cli(['run', ...SMALL, '--json'], { env });
    expect((JSON.parse(stdout) as { workerToken: string }).workerToken).toMatch(/^etw\./);
  });

  it('run: a bad config exits 1 naming the field; an unprepared dataset exits 1 saying what to do', async () => {
    const [micro, dataset, local] = await Promise.all([
      cli(['run', ...SMALL, '--micro-batch', '48'], { env }),
      cli(['run', ...SMALL, '--dataset', 'nope'], { env }),
      cli(['run', ...SMALL, '--epochs', '0'], { env }),
    ]);
    expect(micro.code).toBe(1);
    expect(micro.stderr).toContain('invalid run config');
    expect(micro.stderr).toContain('cluster.microBatch: 48 must divide the global batch (64)');
    expect(dataset.code).toBe(1);
    expect(dataset.stderr).toContain("dataset 'nope' is not prepared: run `edgetrain prepare`");
    expect(local.code).toBe(1);
    expect(local.stderr).toContain('epochs');
    for (const r of [micro, dataset, local]) expect(r.stderr).not.toContain('    at ');
  });

  it('runs: lists the runs newest first with state, creation time and model; --json is the API list', async () => {
    const [table, json] = await Promise.all([cli(['runs'], { env }), cli(['runs', '--json'], { env })]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^RUN +STATE +CREATED +MODEL$/);
    expect(table.stdout).toMatch(new RegExp(`^${runA.runId} +created +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +seed-cnn/align$`, 'm'));
    const runs = (JSON.parse(json.stdout) as { runs: { runId: string; createdAt: number }[] }).runs;
    expect(runs.map((r) => r.runId)).toContain(runA.runId);
    expect(runs.map((r) => r.createdAt)).toEqual([...runs.map((r) => r.createdAt)].sort((a, b) => b - a));
    expect(lines.slice(1).map((l) => l.split(' ')[0])).toEqual(runs.map((r) => r.runId));
  });

  it('status: the run\'s state and progress; --json is the API status', async () => {
    const [text, json] = await Promise.all([cli(['status', runA.runId], { env }), cli(['status', runA.runId, '--json'], { env })]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`run ${runA.runId} (seed-cnn/align, 1 epoch(s) of 2 steps`);
    expect(text.stdout).toMatch(/created · epoch 1\/1 · step 0\/2 · loss — · train — · test — · — img\/s · 0 workers · ETA —/);
    expect(json.code).toBe(0);
    const s = JSON.parse(json.stdout) as RunStatus;
    expect(s.runId).toBe(runA.runId);
    expect(s.state).toBe('created');
  });

  it('status --watch follows a run to completion (a line per change) and exits 0', async () => {
    const watch = spawnCli(['status', runA.runId, '--watch'], { env });
    // The watch has seen the run before any worker exists.
    await waitForOutput(watch, /^created · epoch 1\/1 · step 0\/2/m);
    worker = await startWorkerdWorker({ index: 0, apiUrl: coordinator.url });
    disposers.push(() => worker.dispose());
    await worker.start(runA.runId, runA.workerToken);
    const r = await watch.result;
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toContain(`run ${runA.runId} (seed-cnn/align`);
    expect(lines).toContain('created · epoch 1/1 · step 0/2 · loss — · train — · test — · — img/s · 0 workers · ETA —');
    expect(lines.some((l) => /^completed · epoch 1\/1 · step 2\/2 · loss \d+\.\d{4} · train \d+\.\d\d% · test \d+\.\d\d%/.test(l))).toBe(true);
    expect(lines[lines.length - 1]).toMatch(new RegExp(`^run ${runA.runId} completed: test accuracy \\d+\\.\\d\\d% after 2 steps$`));
    expect(r.stderr).toBe('');
  }, 120_000);

  it('metrics: a line per step and per epoch evaluation; --since, --json and --follow', async () => {
    const [all, since, json, follow] = await Promise.all([
      cli(['metrics', runA.runId], { env }),
      cli(['metrics', runA.runId, '--since', '1'], { env }),
      cli(['metrics', runA.runId, '--json'], { env }),
      cli(['metrics', runA.runId, '--follow'], { env }),
    ]);
    expect(all.code, all.stderr).toBe(0);
    const lines = all.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^step {5}1 {2}epoch 1 {2}loss \d+\.\d{4} {2}accuracy +\d+\.\d\d% +\d+ ms$/);
    expect(lines[1]).toMatch(/^step {5}2 {2}epoch 1 /);
    expect(lines[2]).toMatch(/^eval {2}epoch 1 \(after step 2\) {2}test loss \d+\.\d{4} {2}test accuracy \d+\.\d\d%$/);
    expect(since.stdout.trim().split('\n').map((l) => l.slice(0, 10))).toEqual(['step     2', 'eval  epoc']);
    const m = JSON.parse(json.stdout) as RunMetrics;
    expect(m.steps.map((s) => s.step)).toEqual([1, 2]);
    expect(m.evals).toHaveLength(1);
    expect(lines[0]).toContain(`loss ${m.steps[0].loss.toFixed(4)}`);
    expect(follow.code).toBe(0);
    expect(follow.stdout.trim().split('\n')).toEqual([...lines, `run ${runA.runId} completed`]);
  });

  it('export: writes the inference model (ONNX protobuf) and prints its path and size', async () => {
    const out = path.join(tmp, 'models', 'a.onnx');
    const [r, byDefault] = await Promise.all([cli(['export', runA.runId, '--out', out], { env }), cli(['export', runA.runId], { env, cwd: tmp })]);
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(out);
    expect(bytes.length).toBeGreaterThan(10_000);
    expect(bytes[0]).toBe(0x08); // ModelProto field 1 (ir_version), varint
    expect(bytes.includes(Buffer.from('probabilities'))).toBe(true);
    expect(r.stdout.trim()).toBe(`wrote ${out} (${(bytes.length / 1e6).toFixed(1)} MB, run ${runA.runId})`);
    expect(byDefault.code, byDefault.stderr).toBe(0);
    expect(statSync(path.join(tmp, `${runA.runId}.onnx`)).size).toBe(bytes.length);
  });

  it('cancel and resume: print the resulting state; resuming a run that is not cancelled exits 1; --watch on a cancelled run exits 3', async () => {
    const { runId } = await createRun();
    const cancel = await cli(['cancel', runId], { env });
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout.trim()).toBe(`run ${runId} cancelled at step 0/2: \`edgetrain resume ${runId}\` continues it`);
    const watch = await cli(['status', runId, '--watch'], { env });
    expect(watch.code).toBe(3);
    expect(watch.stdout.trim().split('\n').pop()).toBe(`run ${runId} cancelled at step 0: \`edgetrain resume ${runId}\` continues it`);
    const resume = await cli(['resume', runId], { env });
    expect(resume.code, resume.stderr).toBe(0);
    expect(resume.stdout).toMatch(new RegExp(`^run ${runId} resumed: (created|training) · epoch 1/1 · step 0/2`));
    expect((await api.status(runId)).state).not.toBe('cancelled');
    const again = await cli(['resume', runId], { env });
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toMatch(/^error: only a cancelled run, or one that failed by divergence, can be resumed; this one is (created|training)$/);
    expect(again.stderr).not.toContain('    at ');
    await api.cancel(runId);
  });

  it('worker: joins a run with the worker token `run` printed, works it to completion and exits 0', async () => {
    const { runId, workerToken } = await createRun();
    // No URL given: the target comes from the environment like every command's.
    const r = await cli(['worker', '--run', runId], { env: { EDGETRAIN_URL: coordinator.url, EDGETRAIN_TOKEN: workerToken } });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    // The coordinator names the worker (a minted identity), not the command line.
    const id = /^worker (w-[0-9a-f]{16}) joining run (\S+) at (\S+)$/m.exec(r.stdout);
    expect(id?.slice(2), r.stdout).toEqual([runId, coordinator.url]);
    expect(r.stdout).toMatch(new RegExp(`worker ${id![1]} done \\(run completed\\): \\d+ accepted`));
    const status = await api.status(runId);
    expect(status.state).toBe('completed');
    expect(status.workers.map((w) => w.worker)).toContain(id![1]);
  }, 120_000);
});

describe('data commands', () => {
  it('prepare: uploads to the API the environment names, not to a coordinator of its own', async () => {
    const data = path.join(tmp, 'cifar');
    writeFolder(data, fixtureFiles(100));
    const r = await cli(['prepare', '--data', data, '--name', 'fixture-cli', '--block-images', '128'], { env });
    expect(r.code, r.stderr).toBe(0);
    // The same records in the same blocks as the prepared fixture: every block is already there.
    expect(r.stdout).toMatch(/^dataset fixture-cli = [0-9a-f]{64}: 0 block\(s\) uploaded \(0\.0 MB\), \d+ already stored$/m);
    expect((await api.manifest('fixture-cli'))?.name).toBe('fixture-cli');
  });
});

describe('target, token and API errors', () => {
  it('an unreachable URL exits 3 with one line saying what to do', async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const [refused, unknownHost, local] = await Promise.all([
      cli(['status', 'r1'], { env: { EDGETRAIN_URL: closed, EDGETRAIN_TOKEN: 'x' } }),
      cli(['runs', '--url', 'http://edgetrain.invalid'], { env: { EDGETRAIN_TOKEN: 'x' } }),
      cli(['runs', '--url', closed, '--debug']),
    ]);
    for (const r of [refused, unknownHost]) {
      expect(r.code).toBe(3);
      expect(oneLine(r.stderr), r.stderr).toBe(true);
    }
    expect(refused.stderr.trim()).toBe(
      `cannot reach ${closed} (from $EDGETRAIN_URL): connection refused (ECONNREFUSED) — is the local cluster running (\`edgetrain start --serve\`)? or pass --url / set EDGETRAIN_URL`,
    );
    expect(unknownHost.stderr).toMatch(/^cannot reach http:\/\/edgetrain\.invalid: host (not found \(ENOTFOUND\)|name lookup failed \(EAI_AGAIN\)) — check the URL/);
    // --debug adds the stack trace.
    expect(local.code).toBe(3);
    expect(local.stderr).toContain('    at ');
  });

  it('a wrong or missing token exits 4 naming where the token came from', async () => {
    const empty = mkdtempSync(path.join(tmp, 'cwd-'));
    const [wrong, none] = await Promise.all([
      cli(['runs'], { env: { ...env, EDGETRAIN_TOKEN: 'not-the-token' } }),
      cli(['runs'], { env: { EDGETRAIN_URL: coordinator.url }, cwd: empty }),
    ]);
    expect(wrong.code).toBe(4);
    expect(oneLine(wrong.stderr), wrong.stderr).toBe(true);
    expect(wrong.stderr.trim()).toBe(
      `the API at ${coordinator.url} refused the request (the token from $EDGETRAIN_TOKEN: the API token is wrong): set EDGETRAIN_TOKEN or the config file's "token" to the API token (a local cluster's is in ${path.resolve('.edgetrain/state')}/api-token)`,
    );
    expect(none.code).toBe(4);
    expect(none.stderr).toContain('(no token was sent: no Authorization header');
  });

  it('an unknown run exits 5 pointing at `edgetrain runs`', async () => {
    const [exported, malformed] = await Promise.all([cli(['export', 'r-nope', '--out', path.join(tmp, 'nope.onnx')], { env }), cli(['cancel', 'R_BAD'], { env })]);
    expect(exported.code).toBe(5);
    expect(exported.stderr.trim()).toBe(`no run r-nope at ${coordinator.url}: \`edgetrain runs\` lists them`);
    expect(existsSync(path.join(tmp, 'nope.onnx'))).toBe(false);
    expect(malformed.code).toBe(5);
    expect(malformed.stderr.trim()).toBe(`no run R_BAD at ${coordinator.url} (run ids are lowercase letters, digits and -): \`edgetrain runs\` lists them`);
    for (const r of [exported, malformed]) expect(oneLine(r.stderr), r.stderr).toBe(true);
  });

  it('reads the URL and token from .edgetrain/config.json in the working folder, or from the user config', async () => {
    const project = mkdtempSync(path.join(tmp, 'project-'));
    mkdirSync(path.join(project, '.edgetrain'));
    writeFileSync(path.join(project, '.edgetrain', 'config.json'), JSON.stringify({ url: coordinator.url, token: coordinator.token }));
    const home = mkdtempSync(path.join(tmp, 'xdg-'));
    mkdirSync(path.join(home, 'edgetrain'));
    writeFileSync(path.join(home, 'edgetrain', 'config.json'), JSON.stringify({ url: coordinator.url, token: coordinator.token }));
    const elsewhere = mkdtempSync(path.join(tmp, 'elsewhere-'));
    const broken = mkdtempSync(path.join(tmp, 'broken-'));
    mkdirSync(path.join(broken, '.edgetrain'));
    writeFileSync(path.join(broken, '.edgetrain', 'config.json'), '{"url": ');
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const [inProject, inUserConfig, withoutConfig, badConfig] = await Promise.all([
      cli(['runs'], { cwd: project }),
      cli(['runs'], { cwd: elsewhere, env: { XDG_CONFIG_HOME: home } }),
      cli(['runs', '--url', closed], { cwd: project }),
      cli(['runs'], { cwd: broken }),
    ]);
    expect(inProject.code, inProject.stderr).toBe(0);
    expect(inProject.stdout).toMatch(/^RUN +STATE/);
    expect(inUserConfig.code, inUserConfig.stderr).toBe(0);
    expect(inUserConfig.stdout).toEqual(inProject.stdout);
    // --url wins over the config file (and the file's token is not sent to another URL).
    expect(withoutConfig.code).toBe(3);
    expect(withoutConfig.stderr).toContain(`cannot reach ${closed}:`);
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toContain(`${path.join(broken, '.edgetrain', 'config.json')}: not JSON`);
  });
});
