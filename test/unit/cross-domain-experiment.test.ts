// The cross-domain experiment runner on fixture data: every configuration trained and evaluated on
// every shift, results appended per cell, a re-run trains nothing, the table's mean ± std and gaps.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { crossDomainOptions, crossDomainTable, runCrossDomain, writeCrossDomainReport, type CellResult } from '../../experiments/cross-domain';
import { groupedBarChart } from '../../experiments/chart';
import { runCaptions } from '../../cli/embed-captions';
import { fixtureFiles, writeFolder } from '../support/cifar-fixture';
import { BERT_VOCAB, skipWithout } from '../support/prerequisites';

const WITHOUT_VOCAB = skipWithout(BERT_VOCAB);

describe('cross-domain experiment', () => {
  it('trains each configuration once per seed (DANN once per shift), records every cell, and a re-run trains nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'edgetrain-xd-'));
    writeFolder(path.join(dir, 'cifar'), fixtureFiles(40));
    const argv = ['--presets', 'bn-cnn', '--shifts', 'contrast:3,gaussian_noise:2', '--seeds', '1', '--epochs', '1', '--train-limit', '128', '--eval-limit', '100', '--runtime', 'web', '--data', path.join(dir, 'cifar'), '--out', dir];
    const options = crossDomainOptions(argv);
    const trained: string[] = [];
    const results = await runCrossDomain(options, (s) => trained.push(s));
    const cells = results.map((r) => `${r.configuration}|${r.shift}`).sort();
    const configurations = ['AdaBN', 'DANN', 'align', 'align + DANN', 'attention', 'source-only'];
    expect(cells).toEqual(configurations.flatMap((c) => [`${c}|contrast-3`, `${c}|gaussian_noise-2`]).sort());
    for (const r of results) {
      expect(r.targetAccuracy).toBeGreaterThanOrEqual(0);
      expect(r.targetAccuracy).toBeLessThanOrEqual(1);
      expect(r).toMatchObject({ preset: 'bn-cnn', seed: 1, epochs: 1, trainLimit: 128, runtime: 'web', captions: 'placeholder' });
    }
    // AdaBN is the source-only model re-normalised for the target: the same model on the source.
    const of = (c: string, s: string) => results.find((r) => r.configuration === c && r.shift === s)!;
    expect(of('AdaBN', 'contrast-3').sourceAccuracy).toBe(of('source-only', 'contrast-3').sourceAccuracy);

    const again: string[] = [];
    const rerun = await runCrossDomain(options, (s) => again.push(s));
    expect(again.filter((l) => l.includes('seed 1:'))).toEqual([]);
    expect(rerun).toHaveLength(results.length);

    await writeCrossDomainReport(rerun, dir);
    expect(readFileSync(path.join(dir, 'table.md'), 'utf8')).toContain('| bn-cnn | source test | target: contrast-3 | target: gaussian_noise-2 |');
    expect(readFileSync(path.join(dir, 'chart.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>$/);
  }, 240_000);

  it.skipIf(WITHOUT_VOCAB)('--captions HASH trains the heads on a caption set stored in the local cluster; an unknown hash names it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'edgetrain-xd-captions-'));
    writeFolder(path.join(dir, 'cifar'), fixtureFiles(40));
    const state = path.join(dir, 'state');
    const stored = await runCaptions(['--test-model', '--state', state], () => undefined);
    const hash = 'entry' in stored ? stored.entry.key.slice('captions/'.length) : '';
    const argv = (captions: string) => ['--presets', 'seed-cnn', '--shifts', 'contrast:3', '--seeds', '1', '--epochs', '1', '--train-limit', '128', '--eval-limit', '50', '--runtime', 'web', '--data', path.join(dir, 'cifar'), '--out', path.join(dir, captions.slice(0, 8)), '--captions', captions, '--state', state];
    const results = await runCrossDomain(crossDomainOptions(argv(hash)), () => undefined);
    expect(results.length).toBe(6);
    expect(new Set(results.map((r) => r.captions))).toEqual(new Set([hash]));
    await expect(runCrossDomain(crossDomainOptions(argv('0'.repeat(64))), () => undefined)).rejects.toThrow(`caption set ${'0'.repeat(64)} is not stored`);
  }, 240_000);

  it('tables mean ± sample std over seeds and the gaps to source-only and AdaBN', () => {
    const cell = (configuration: string, seed: number, targetAccuracy: number): CellResult => ({
      preset: 'res-cnn', configuration, shift: 'fog-3', seed, sourceAccuracy: 0.8, targetAccuracy, runtime: 'native', epochs: 4, trainLimit: 3000, captions: 'placeholder', seconds: 1,
    });
    const results = [cell('source-only', 1, 0.5), cell('source-only', 2, 0.52), cell('source-only', 3, 0.54), cell('AdaBN', 1, 0.6), cell('AdaBN', 2, 0.6), cell('DANN', 1, 0.61), cell('DANN', 2, 0.63)];
    const table = crossDomainTable(results);
    expect(table).toContain('| source-only | 80.00 ± 0.00 (3) | 52.00 ± 2.00 (3) |');
    expect(table).toContain('| DANN | 80.00 ± 0.00 (2) | 62.00 ± 1.41 (2) |');
    expect(table).toContain('| DANN − source-only | | +10.00 (spread 3.41) |');
    expect(table).toContain('| DANN − AdaBN | | +2.00 (spread 1.41) |');
    expect(table).toContain('| attention | — | — |');
  });

  it('draws a bar with a whisker per measured cell and none for a missing one', () => {
    const svg = groupedBarChart('t', [{ label: 'g', bars: [{ label: 'a', mean: 50, std: 2 }, { label: 'b', mean: NaN, std: 0 }, { label: 'c', mean: 30, std: 0 }] }], ['a', 'b', 'c']);
    expect(svg.match(/<rect x="[\d.]+" y="[\d.]+" width="14"/g)).toHaveLength(2);
    expect(svg.match(/<path d="M/g)).toHaveLength(1);
  });
});
