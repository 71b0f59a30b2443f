// In-process checks of the CLI's pieces the process tests cannot reach cheaply: the target and token
// precedence (flag, environment, config files, the local state), the error → message/exit code table,
// and flag parsing.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError, closest, intFlag, parseCommand, parseFlags } from '../../cli/args';
import { EXIT, explain } from '../../cli/errors';
import { DEFAULT_URL, resolveTarget, type Target } from '../../cli/target';
import { FINAL_STATES as CLI_FINAL_STATES } from '../../cli/watch';
import { FINAL_STATES } from '../../shared/protocol';
import { ApiError } from '../../workers/gradient/client';

const root = mkdtempSync(path.join(tmpdir(), 'edgetrain-target-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(root, 'f-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const config = (c: object) => JSON.stringify(c);

describe('target resolution', () => {
  const home = folder({});
  const where = (cwd: string, env: NodeJS.ProcessEnv = {}) => ({ cwd, env, home });

  it('defaults to the local cluster with the state\'s token', async () => {
    const cwd = folder({ '.edgetrain/state/api-token': 'local-token\n' });
    const t = await resolveTarget({}, where(cwd));
    expect(t).toMatchObject({ url: DEFAULT_URL, urlSource: 'default', token: 'local-token', tokenFrom: path.join(cwd, '.edgetrain/state/api-token'), local: true });
    const other = await resolveTarget({ state: 'elsewhere' }, where(cwd));
    expect(other.token).toBeUndefined();
    expect(other.state).toBe(path.join(cwd, 'elsewhere'));
  });

  it('takes --url over $EDGETRAIN_URL over the project config over the user config', async () => {
    const user = folder({ 'edgetrain/config.json': config({ url: 'https://user.example', token: 'user-token' }) });
    const cwd = folder({ '.edgetrain/config.json': config({ url: 'https://project.example/', token: 'project-token' }) });
    const empty = folder({});
    const env = { XDG_CONFIG_HOME: user };
    expect((await resolveTarget({ url: 'https://flag.example' }, where(cwd, { ...env, EDGETRAIN_URL: 'https://env.example' }))).url).toBe('https://flag.example');
    expect((await resolveTarget({}, where(cwd, { ...env, EDGETRAIN_URL: 'https://env.example' }))).url).toBe('https://env.example');
    expect(await resolveTarget({}, where(cwd, env))).toMatchObject({ url: 'https://project.example', token: 'project-token', urlSource: 'config' });
    expect(await resolveTarget({}, where(empty, env))).toMatchObject({ url: 'https://user.example', token: 'user-token' });
    // Without XDG_CONFIG_HOME: ~/.config/edgetrain/config.json.
    const dotConfig = folder({ '.config/edgetrain/config.json': config({ url: 'https://home.example', token: 'home-token' }) });
    expect(await resolveTarget({}, { cwd: empty, env: {}, home: dotConfig })).toMatchObject({ url: 'https://home.example', token: 'home-token' });
  });

  it('talks to the local cluster of an explicit --state, found through its server.json while it serves', async () => {
    const cwd = folder({ '.edgetrain/config.json': config({ url: 'https://project.example' }), 'other/api-token': 'other-token', 'other/server.json': config({ url: 'http://127.0.0.1:40001', pid: process.pid }) });
    expect(await resolveTarget({ state: 'other' }, where(cwd, { EDGETRAIN_URL: 'https://env.example' }))).toMatchObject({ url: 'http://127.0.0.1:40001', urlSource: 'server', token: 'other-token' });
    expect((await resolveTarget({}, where(cwd, { EDGETRAIN_URL: 'https://env.example' }))).url).toBe('https://env.example');
    // A server.json whose process is gone is stale.
    const stale = folder({ 'state/server.json': config({ url: 'http://127.0.0.1:40002', pid: 2 ** 22 + 1 }) });
    expect(await resolveTarget({ state: 'state' }, where(stale))).toMatchObject({ url: DEFAULT_URL, urlSource: 'default' });
  });

  it('takes $EDGETRAIN_TOKEN over the config file, and sends a config file\'s token only to its own URL', async () => {
    const cwd = folder({ '.edgetrain/config.json': config({ url: 'https://project.example', token: 'project-token' }), '.edgetrain/state/api-token': 'local-token' });
    expect(await resolveTarget({}, where(cwd, { EDGETRAIN_TOKEN: 'env-token' }))).toMatchObject({ token: 'env-token', tokenFrom: '$EDGETRAIN_TOKEN' });
    expect((await resolveTarget({ url: 'https://other.example' }, where(cwd))).token).toBeUndefined();
    // A local URL falls back to the state's token.
    expect((await resolveTarget({ url: 'http://localhost:8787' }, where(cwd))).token).toBe('local-token');
    // A config file without a URL lends its token to any URL.
    const tokenOnly = folder({ '.edgetrain/config.json': config({ token: 'any-url-token' }) });
    expect(await resolveTarget({ url: 'https://other.example' }, where(tokenOnly))).toMatchObject({ token: 'any-url-token', tokenFrom: path.join(tokenOnly, '.edgetrain/config.json') });
  });

  it('refuses a URL that is not http(s) and a config file that is not {url, token}', async () => {
    const cwd = folder({});
    await expect(resolveTarget({ url: 'ftp://x' }, where(cwd))).rejects.toThrow(UsageError);
    await expect(resolveTarget({}, where(cwd, { EDGETRAIN_URL: 'not a url' }))).rejects.toThrow("$EDGETRAIN_URL: 'not a url' is not a URL");
    const bad = folder({ '.edgetrain/config.json': config({ url: 42 }) });
    await expect(resolveTarget({}, where(bad))).rejects.toThrow(`${path.join(bad, '.edgetrain/config.json')}: "url" must be a non-empty string`);
  });
});

describe('errors → message and exit code', () => {
  const target: Target = { url: 'https://api.example', urlSource: 'env', urlFrom: '$EDGETRAIN_URL', token: 't', tokenFrom: '$EDGETRAIN_TOKEN', local: false, state: '/s' };
  const fetchFailed = (code: string) => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(`connect ${code}`), { code }) });

  it('maps each kind of failure to its exit code', () => {
    expect(explain(new UsageError('status: missing ID'), { command: 'status' })).toEqual({ code: EXIT.usage, message: 'edgetrain status: missing ID — see `edgetrain status --help`' });
    expect(explain(fetchFailed('ECONNREFUSED'), { target })).toEqual({
      code: EXIT.unreachable,
      message: 'cannot reach https://api.example (from $EDGETRAIN_URL): connection refused (ECONNREFUSED) — check the URL, or pass --url / set EDGETRAIN_URL',
    });
    expect(explain(fetchFailed('ENOTFOUND'), { target }).code).toBe(3);
    expect(explain(Object.assign(new DOMException('timed out', 'TimeoutError')), { target }).message).toContain('no answer in time');
    expect(explain(new ApiError(401, { error: 'no Authorization header', reason: 'unauthenticated' }), { target })).toEqual({
      code: EXIT.token,
      message: "the API at https://api.example refused the request (the token from $EDGETRAIN_TOKEN: no Authorization header): set EDGETRAIN_TOKEN or the config file's \"token\" to the API token",
    });
    expect(explain(new ApiError(403, { error: 'a worker token cannot control runs', reason: 'forbidden' }), { target }).code).toBe(4);
    expect(explain(new ApiError(404, { error: 'unknown run', reason: 'unknown-run' }), { target, runId: 'r-x' })).toEqual({
      code: EXIT.unknownRun,
      message: 'no run r-x at https://api.example: `edgetrain runs` lists them',
    });
    expect(explain(new ApiError(404, { error: 'Not Found' }), { target }).code).toBe(1);
    const invalid = explain(new ApiError(400, { error: 'invalid run config', reason: 'config', issues: [{ path: 'epochs', message: 'must be ≥ 1' }] }), { target });
    expect(invalid).toEqual({ code: 1, message: 'error: invalid run config\n  epochs: must be ≥ 1' });
    expect(explain(new ApiError(409, { error: 'run r-x is training, not cancelled', reason: 'not-cancelled' }), { target }).code).toBe(1);
    expect(explain(new Error('boom'))).toEqual({ code: 1, message: 'error: boom' });
  });
});

describe('flag parsing', () => {
  const options = { watch: { type: 'boolean' }, since: { type: 'string' } } as const;

  it('names the problem, suggests the flag meant, and lists the valid ones', () => {
    expect(() => parseFlags(['--wacth'], options, 'status')).toThrow("status: Unknown option '--wacth' (did you mean --watch?)\nvalid options: --watch, --since");
    expect(() => parseFlags(['--since'], options, 'metrics')).toThrow("metrics: Option '--since <value>' argument missing");
    expect(() => parseFlags(['x'], options, 'runs')).toThrow("runs: Unexpected argument 'x' (this command takes options only)");
    expect(closest('stauts', ['status', 'start', 'runs'])).toBe('status');
    expect(closest('zzz', ['status', 'runs'])).toBeUndefined();
  });

  it('takes named positional arguments', () => {
    expect(parseCommand(['r1', '--watch'], options, 'status', ['ID'])).toEqual({ values: { watch: true }, args: { ID: 'r1' } });
    expect(() => parseCommand([], options, 'status', ['ID'])).toThrow('status: missing ID');
    expect(() => parseCommand(['a', 'b'], options, 'status', ['ID'])).toThrow("status: unexpected argument 'b'");
    expect(() => intFlag('since', '1.5', 0)).toThrow("--since: '1.5' is not an integer ≥ 0");
  });

  it('knows the final states without loading the protocol schemas', () => {
    expect([...CLI_FINAL_STATES].sort()).toEqual([...FINAL_STATES].sort());
  });
});
