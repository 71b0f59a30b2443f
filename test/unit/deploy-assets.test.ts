// The static-asset size check the API's asset build runs (cli/cluster/deploy-assets.ts), and the join link.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ASSET_FILE_LIMIT, joinLink, oversized } from '../../cli/cluster/deploy-assets';

describe('the API static assets', () => {
  it('names every file over the per-file limit, in subfolders too, and none at the limit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgetrain-oversized-'));
    try {
      mkdirSync(join(dir, 'worker', 'chunks'), { recursive: true });
      writeFileSync(join(dir, 'worker', 'at-limit.wasm'), new Uint8Array(10));
      writeFileSync(join(dir, 'worker', 'chunks', 'over.wasm'), new Uint8Array(11));
      expect(oversized(dir, 10)).toEqual([{ file: join('worker', 'chunks', 'over.wasm'), bytes: 11 }]);
      expect(oversized(dir)).toEqual([]);
      expect(ASSET_FILE_LIMIT).toBe(25 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a run's join link is the page under /worker/ with the run and worker token in the fragment", () => {
    expect(joinLink('https://edgetrain.example.workers.dev/', 'r1', 'wt.a+b/c')).toBe('https://edgetrain.example.workers.dev/worker/#run=r1&token=wt.a%2Bb%2Fc');
    expect(joinLink('http://127.0.0.1:8787', 'r1', 't', 'wasm')).toBe('http://127.0.0.1:8787/worker/#run=r1&token=t&ep=wasm');
  });
});
