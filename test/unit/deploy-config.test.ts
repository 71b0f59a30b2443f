// The two wrangler configs agree where the design depends on it: the API's WORK_MAX_CONCURRENCY (what
// run creation checks cluster.workers against) is the gradient consumer's max_concurrency, within
// Cloudflare's 250; the dead-letter queue the consumer names is the one the API script consumes; a
// failed delivery is retried after a delay.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const api = readFileSync('wrangler.toml', 'utf8');
const gradient = readFileSync('workers/gradient/wrangler.toml', 'utf8');

/** The value of `key = value` (quotes dropped) in a TOML text; fails when absent or repeated. */
function setting(toml: string, key: string): string {
  const found = [...toml.matchAll(new RegExp(`^${key}\\s*=\\s*"?([^"\\n]*)"?\\s*$`, 'gm'))].map((m) => m[1]);
  expect(found, `${key} in a wrangler config`).toHaveLength(1);
  return found[0];
}

describe('deploy configs', () => {
  it("WORK_MAX_CONCURRENCY equals the gradient consumer's max_concurrency, at most 250", () => {
    const concurrency = Number(setting(gradient, 'max_concurrency'));
    expect(Number(setting(api, 'WORK_MAX_CONCURRENCY'))).toBe(concurrency);
    expect(concurrency).toBeLessThanOrEqual(250);
  });

  it('the consumer dead-letters to the queue the API script consumes, retrying after a delay first', () => {
    const dlq = setting(gradient, 'dead_letter_queue');
    expect(api).toMatch(new RegExp(`\\[\\[queues\\.consumers\\]\\]\\nqueue = "${dlq}"`));
    expect(Number(setting(gradient, 'retry_delay'))).toBeGreaterThan(0);
    expect(Number(setting(gradient, 'max_batch_size'))).toBe(1);
  });
});
