// The two wrangler configs agree where the design depends on it: the API's WORK_MAX_CONCURRENCY (what
// run creation checks cluster.workers against) is the gradient consumer's max_concurrency, within
// Cloudflare's 250; the dead-letter queue the consumer names is the one the API script consumes; a
// failed delivery is retried after a delay; the local Cloudflare profile reads the same settings.
import { describe, expect, it } from 'vitest';
import { API_CONFIG, GRADIENT_CONFIG, deployedSettings, readConfig, tomlSetting } from '../../cli/cluster/deployed-config';

const api = readConfig(API_CONFIG);
const gradient = readConfig(GRADIENT_CONFIG);

describe('deploy configs', () => {
  it("WORK_MAX_CONCURRENCY equals the gradient consumer's max_concurrency, at most 250", () => {
    const concurrency = Number(tomlSetting(gradient, 'max_concurrency'));
    expect(Number(tomlSetting(api, 'WORK_MAX_CONCURRENCY'))).toBe(concurrency);
    expect(concurrency).toBeLessThanOrEqual(250);
  });

  it('the consumer dead-letters to the queue the API script consumes, retrying after a delay first', () => {
    const dlq = tomlSetting(gradient, 'dead_letter_queue');
    expect(api).toMatch(new RegExp(`\\[\\[queues\\.consumers\\]\\]\\nqueue = "${dlq}"`));
    expect(Number(tomlSetting(gradient, 'retry_delay'))).toBeGreaterThan(0);
    expect(Number(tomlSetting(gradient, 'max_batch_size'))).toBe(1);
  });

  it("the API's mirrors of the gradient script's cache sizes (for the memory estimate) are equal to them", () => {
    for (const key of ['DATA_CACHE_MB', 'CAPTION_CACHE_MB']) expect(tomlSetting(api, key), key).toBe(tomlSetting(gradient, key));
  });

  it('the settings the local Cloudflare profile copies are all there', () => {
    const s = deployedSettings();
    expect(s.budgetMs).toBeLessThan(300_000);
    expect(s).toMatchObject({ maxRetries: 2, retryDelayS: 15, maxConcurrency: 8 });
    expect(s.workerMemoryMb).toBeGreaterThan(0);
  });

  it('a setting that is missing or repeated is an error naming it', () => {
    expect(() => tomlSetting('a = 1\na = 2\n', 'a', 'x.toml')).toThrow('x.toml: expected one `a = …`, found 2');
    expect(() => tomlSetting('', 'b', 'x.toml')).toThrow('found 0');
  });
});
