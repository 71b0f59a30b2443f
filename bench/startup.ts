// A script's global-scope start-up time, measured by `wrangler check startup` (offline: it builds the
// script and profiles its start in a local workerd, writing a V8 CPU profile). Cloudflare's limit:
// "Worker startup time: 1 second" (https://developers.cloudflare.com/workers/platform/limits/#worker-startup-time).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const STARTUP_LIMIT_MS = 1000;

/** A V8 .cpuprofile, as far as it is read here. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string } }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface StartupProfile {
  /** The profile's window, start to end (ms). */
  windowMs: number;
  /** Sampled time not on the idle node: JavaScript, compilation, garbage collection (ms). */
  activeMs: number;
}

/** Window and active time of a profile (µs in the file). */
export function readStartupProfile(profile: CpuProfile): StartupProfile {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  let active = 0;
  profile.samples.forEach((id, i) => {
    if (!idle.has(id)) active += profile.timeDeltas[i] ?? 0;
  });
  return { windowMs: (profile.endTime - profile.startTime) / 1000, activeMs: active / 1000 };
}

/** Runs `wrangler check startup -c config` and reads the profile it writes into `dir`. */
export async function profileStartup(root: string, config: string, dir: string, env: Record<string, string>): Promise<StartupProfile> {
  const outfile = join(dir, 'startup.cpuprofile');
  try {
    await promisify(execFile)(join(root, 'node_modules/.bin/wrangler'), ['check', 'startup', '-c', config, '--outfile', outfile], {
      cwd: root,
      env: { ...process.env, ...env },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 180_000,
    });
  } catch (e) {
    const { stdout = '', stderr = '' } = e as { stdout?: string; stderr?: string };
    throw new Error(`wrangler check startup -c ${config} failed:\n${stdout}${stderr}`, { cause: e });
  }
  return readStartupProfile(JSON.parse(await readFile(outfile, 'utf8')) as CpuProfile);
}
