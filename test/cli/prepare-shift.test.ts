// `edgetrain prepare --shift FAMILY:SEVERITY` as a user runs it (a child process against a local coordinator
// of this file's own): the stored dataset is exactly corruptCifar10's bytes, named after the shift; a bad
// shift is a usage error that uploads nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type LocalCoordinator } from '../../cli/cluster/local';
import { buildDatasetBlocks } from '../../shared/data/blocks';
import { assembleCifar10 } from '../../shared/data/cifar';
import { corruptCifar10 } from '../../shared/data/corruptions';
import { ApiClient } from '../../workers/gradient/client';
import { fixtureFiles, writeFolder } from '../support/cifar-fixture';
import { cli, oneLine } from './spawn';

let coordinator: LocalCoordinator;
let api: ApiClient;
let env: Record<string, string>;
const tmp = mkdtempSync(path.join(tmpdir(), 'edgetrain-shift-'));
const data = path.join(tmp, 'cifar');

beforeAll(async () => {
  coordinator = await startCoordinator();
  api = new ApiClient(coordinator.url, { token: coordinator.token });
  env = { EDGETRAIN_URL: coordinator.url, EDGETRAIN_TOKEN: coordinator.token };
  writeFolder(data, fixtureFiles(100));
});

afterAll(async () => {
  await coordinator?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

async function storedKeys(): Promise<string[]> {
  const bucket = await coordinator.mf.getR2Bucket('DATA');
  const keys: string[] = [];
  for (let cursor: string | undefined, done = false; !done; ) {
    const page = await bucket.list({ cursor });
    keys.push(...page.objects.map((o) => o.key));
    done = !page.truncated;
    cursor = page.truncated ? page.cursor : undefined;
  }
  return keys;
}

describe('prepare --shift', () => {
  it('a bad --shift exits 2 naming the flag and the valid values, and stores nothing', async () => {
    const [severity, family, seedAlone] = await Promise.all([
      cli(['prepare', '--data', data, '--shift', 'fog:9'], { env }),
      cli(['prepare', '--data', data, '--shift', 'haze:2'], { env }),
      cli(['prepare', '--data', data, '--shift-seed', '3'], { env }),
    ]);
    for (const r of [severity, family, seedAlone]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('--shift');
    }
    expect(oneLine(severity.stderr), severity.stderr).toBe(true);
    expect(severity.stderr).toContain("edgetrain prepare: --shift: severity '9' in 'fog:9' is not one of 1, 2, 3, 4, 5 — see `edgetrain prepare --help`");
    expect(family.stderr).toMatch(/--shift: unknown corruption family 'haze' in 'haze:2'; families: gaussian_noise, .*fog, jpeg/);
    expect(seedAlone.stderr).toContain('--shift-seed: only with --shift');
    expect(await storedKeys()).toEqual([]);
  });

  it('--shift contrast:2 stores NAME-contrast-2 whose blocks hold exactly corruptCifar10\'s bytes', async () => {
    const r = await cli(['prepare', '--data', data, '--name', 'fixture', '--block-images', '128', '--shift', 'contrast:2'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^dataset fixture-contrast-2 = [0-9a-f]{64}: 5 block\(s\) uploaded \(1\.8 MB\), 0 already stored$/m);

    const shift = { family: 'contrast', severity: 2 } as const;
    const expected = await buildDatasetBlocks(corruptCifar10(assembleCifar10(fixtureFiles(100), 'fixture'), shift, 0), 'fixture-contrast-2', 128);
    const manifest = await api.manifest('fixture-contrast-2');
    expect(manifest).toEqual(expected.manifest);
    for (const block of [...manifest!.train.blocks, ...manifest!.test.blocks]) {
      expect(Buffer.from(await api.block(block.sha256)).equals(Buffer.from(expected.blocks.get(block.sha256)!))).toBe(true);
    }
    // Not the clean dataset's blocks: a shifted domain shares none of them.
    const clean = await buildDatasetBlocks(assembleCifar10(fixtureFiles(100), 'fixture'), 'fixture', 128);
    expect([...clean.blocks.keys()].filter((sha) => expected.blocks.has(sha))).toEqual([]);
  });
});
