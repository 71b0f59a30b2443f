// The abuse suite, CLI part: careless users and hostile input against the real `edgetrain` CLI in
// child processes (stdout piped, as into a log file), real local clusters and real HTTP. Each test
// names a finding and the answer the CLI must give.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeCheckpoint, type TrainerState } from '../../shared/training/checkpoint';
import { ApiClient } from '../../workers/gradient/client';
import { cli, oneLine, spawnCli, waitForOutput, type CliProcess } from '../cli/spawn';
import { prepareFixtureDataset } from '../support/fixture-dataset';

const dir = mkdtempSync(path.join(tmpdir(), 'edgetrain-abuse-cli-'));
const started: CliProcess[] = [];
const servers: Server[] = [];

afterAll(async () => {
  for (const p of started) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    p.kill('SIGINT');
    const killer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await p.result;
    clearTimeout(killer);
  }
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

/** `edgetrain start --serve` on a fresh state folder (one Node worker: the only workerd child is the API's); its URL once it serves. */
async function serve(name: string): Promise<{ proc: CliProcess; state: string; url: string }> {
  const state = path.join(dir, name);
  const proc = spawnCli(['start', '--serve', '--runtime', 'node', '--workers', '1', '--port', '0', '--state', state], { cwd: dir });
  started.push(proc);
  const [, url] = await waitForOutput(proc, /^serving at (http:\/\/127\.0\.0\.1:\d+) until Ctrl-C/m, 120_000);
  return { proc, state, url };
}

/** The direct child processes of `pid` named `comm` (Linux /proc). */
function children(pid: number, comm: string): number[] {
  const pids = readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  return pids.filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === comm;
    } catch {
      return false;
    }
  });
}

/** A pid no process has: a child that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.on('close', r));
  return child.pid!;
}

describe('abuse: the CLI against careless users and hostile input', () => {
  it('start --serve, run and browser with stdout piped into a log print no API or worker token, and say where the token is', async () => {
    const { proc, state, url } = await serve('tokens');
    const tokenFile = path.join(state, 'api-token');
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(proc.output()).toContain(`  dashboard: ${url}/ (the page asks for the token: ${tokenFile})\n`);
    expect(proc.output()).not.toContain(token);

    const api = new ApiClient(url, { token });
    await prepareFixtureDataset(api);
    const run = await cli(['run', '--state', state, '--dataset', 'fixture', '--train-limit', '64', '--batch', '64', '--eval-batch', '50', '--epochs', '1', '--micro-batch', '32'], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    const runId = /^run (\S+) created: /m.exec(run.stdout)![1];
    const workerToken = await api.workerToken(runId);
    expect(run.stdout).toContain(`  workers: EDGETRAIN_TOKEN=<its worker token, shown on a terminal or with --json; or the API token> edgetrain worker --url ${url} --run ${runId}\n`);

    const browser = spawnCli(['browser', '--run', runId, '--port', '0', '--state', state], { cwd: dir });
    started.push(browser);
    await waitForOutput(browser, /^serving until Ctrl-C$/m, 120_000);
    browser.kill('SIGINT');
    const page = await browser.result;
    expect(page.stdout).toMatch(new RegExp(`^ {2}or the API's own page \\(WASM only\\): ${url}/worker/#run=${runId}$`, 'm'));
    expect(page.stdout).toContain("the page asks for the run's worker token");

    for (const [what, out] of [['start', proc.output()], ['run', run.stdout + run.stderr], ['browser', page.stdout + page.stderr]] as const) {
      expect(out, `${what}: the API token`).not.toContain(token);
      expect(out, `${what}: the worker token`).not.toContain(workerToken);
    }
  }, 300_000);

  it('start --serve whose API/coordinator process is killed says so on stderr, removes its server.json and exits 1', async () => {
    const { proc, state } = await serve('killed');
    const serverFile = path.join(state, 'server.json');
    expect(JSON.parse(readFileSync(serverFile, 'utf8')).pid).toBe(proc.pid);
    const workerd = children(proc.pid!, 'workerd');
    expect(workerd, 'one workerd child: the API and coordinator').toHaveLength(1);
    process.kill(workerd[0], 'SIGKILL');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    const r = await proc.result;
    clearTimeout(killer);
    expect(r.signal, 'start exited on its own within 30 s').toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^edgetrain start: the API and coordinator process \(workerd\) at http:\/\/127\.0\.0\.1:\d+ exited unexpectedly; stopping this cluster and its workers/);
    expect(existsSync(serverFile)).toBe(false);
  }, 180_000);

  it('a command on a state whose server.json names a process that is gone says the file is stale (exit 3), not "connection refused"', async () => {
    const state = path.join(dir, 'stale');
    mkdirSync(state, { recursive: true });
    const file = path.join(state, 'server.json');
    const pid = await deadPid();
    writeFileSync(file, JSON.stringify({ url: 'http://127.0.0.1:1', pid }));
    const r = await cli(['runs', '--state', state], { cwd: dir });
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe(`${file} is stale: the \`edgetrain start\` that wrote it (pid ${pid}, serving http://127.0.0.1:1) is not running, so no local cluster serves ${state} — start it again (\`edgetrain start --serve\`), or pass --url / set EDGETRAIN_URL`);
    expect(existsSync(file), 'the file is left for the user').toBe(true);
  });

  it('a truncated or non-JSON server.json, or an empty api-token, is named with what is wrong (exit 1), not a connection error', async () => {
    for (const [name, text, wrong] of [
      ['truncated', '{"url": "http://127.0.0.1:87', 'not valid JSON'],
      ['garbage', '\u0000\u0001binary', 'not valid JSON'],
      ['fields', '{"url": 8787}', 'expected {"url": "…", "pid": N}'],
    ] as const) {
      const state = path.join(dir, `server-${name}`);
      mkdirSync(state, { recursive: true });
      const file = path.join(state, 'server.json');
      writeFileSync(file, text);
      const r = await cli(['status', 'r1', '--state', state], { cwd: dir });
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toContain(`error: ${file}: ${wrong}`);
      expect(r.stderr, name).toContain('delete it if no cluster serves it');
      expect(oneLine(r.stderr), name).toBe(true);
      expect(readFileSync(file, 'utf8'), `${name}: left as it was`).toBe(text);
    }
    const state = path.join(dir, 'token-empty');
    mkdirSync(state, { recursive: true });
    writeFileSync(path.join(state, 'api-token'), '\n');
    const r = await cli(['runs', '--state', state], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`error: ${path.join(state, 'api-token')}: empty; it holds the local cluster's API token: delete it and a new one is written, or put the token back`);
  });

  it('train --resume with a corrupt or truncated checkpoint names the file and what is wrong (exit 1), and leaves it in place', async () => {
    for (const [name, bytes, wrong] of [
      // Cut short inside its header.
      ['truncated', checkpointBytes().slice(0, 40), /: 40 bytes, its header alone claims \d+ \(truncated or corrupt\)/],
      ['header', replaced(checkpointBytes(), '"epoch":1', '"epoch":!'), /: header is not valid JSON \(.+\): corrupt checkpoint/],
      ['sections', replaced(checkpointBytes(), '"sections"', '"sectionz"'), /: header lists no valid sections: corrupt checkpoint/],
    ] as const) {
      const out = path.join(dir, `ckpt-${name}`);
      mkdirSync(out, { recursive: true });
      const file = path.join(out, 'checkpoint.bin');
      writeFileSync(file, bytes);
      const r = await cli(['train', '--resume', '--out', out, '--epochs', '1'], { cwd: dir });
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toContain(`--resume: ${file}`);
      expect(r.stderr, name).toMatch(wrong);
      expect(r.stderr, name).toContain('train without --resume to start over');
      expect(oneLine(r.stderr), `${name}: ${r.stderr}`).toBe(true);
      expect(new Uint8Array(readFileSync(file)), `${name}: left as it was`).toEqual(bytes);
    }
  });

  it('run creation is resent safely: after a 503 or a dropped connection the client sends it again with the same Idempotency-Key', async () => {
    const created = { runId: 'r20261204000000-abcdef01', workerToken: 'etw.x', workerTokenExpiresAt: 0 };
    for (const fail of ['503', 'dropped'] as const) {
      const keys: (string | undefined)[] = [];
      const server = createServer((req, res) => {
        keys.push(req.headers['idempotency-key'] as string | undefined);
        req.resume();
        req.on('end', () => {
          if (keys.length > 1) res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(created));
          else if (fail === '503') res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' }).end('{"error":"coordinator restarting"}');
          else res.socket?.destroy();
        });
      });
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const client = new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { token: 'et_test', retryForMs: 5000 });
      expect(await client.createRun({ epochs: 1 }), fail).toMatchObject({ runId: created.runId });
      expect(keys, fail).toHaveLength(2);
      expect(keys[0], fail).toMatch(/^[0-9a-f-]{36}$/);
      expect(keys[1], fail).toBe(keys[0]);
    }
  });
});

/** A real checkpoint file's bytes (tiny arrays; the config is never read before the header fails). */
function checkpointBytes(): Uint8Array {
  const state: TrainerState = { config: {} as TrainerState['config'], epoch: 1, step: 2, params: new Float32Array(4), buffers: new Float32Array(2), optimizer: { step: 2, slots: [new Float32Array(4)] }, history: [] };
  return encodeCheckpoint(state);
}

/** `bytes` with every `from` in it replaced by `to` (same length). */
function replaced(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  expect(text).toContain(from);
  return new Uint8Array(Buffer.from(text.split(from).join(to), 'latin1'));
}
