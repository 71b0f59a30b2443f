// `edgetrain worker`: this machine joins a run as a gradient worker (Node, ORT in a worker thread),
// speaking the same lease/submit protocol as the Workers-runtime workers.
import { hostname } from 'node:os';
import { isWorkerToken } from '../shared/auth';
import { ApiClient } from '../workers/gradient/client';
import type { WorkReport } from '../workers/gradient/loop';
import { NodeWorker } from '../workers/node/runtime';
import { choiceFlag, numberFlag, parseFlags, UsageError } from './args';
import { TOKEN_ENV } from './connect';

export const WORKER_USAGE = `edgetrain worker --url URL --run ID [options]   join a run as a gradient worker from this machine
  token: ${TOKEN_ENV} = the run's worker token (from POST /v1/runs) or the API token
  --url URL              the API (a deployment, or a local cluster such as http://127.0.0.1:8787)
  --run ID               the run to work on
  --id NAME              this worker's id (default node-<host>-<pid>)
  --ort web|native       onnxruntime-web WASM (default) or onnxruntime-node, when installed
  --threads N (1)        ORT intra-op threads
  --retry-ms N (60000)   how long to keep retrying while the API is unreachable or restarting
  --verbose              one line per lease taken and per lease dropped`;

const FLAGS = {
  url: { type: 'string' },
  run: { type: 'string' },
  id: { type: 'string' },
  ort: { type: 'string' },
  threads: { type: 'string' },
  'retry-ms': { type: 'string' },
  verbose: { type: 'boolean' },
} as const;

export async function workerCommand(argv: string[], log: (s: string) => void = console.log): Promise<WorkReport> {
  const flags = parseFlags(argv, FLAGS, 'worker');
  if (!flags.url || !flags.run) throw new UsageError(`worker: --url and --run are required\n${WORKER_USAGE}`);
  const token = process.env[TOKEN_ENV];
  if (!token) throw new UsageError(`worker: set ${TOKEN_ENV} to the run's worker token (or the API token)`);
  const workerId = flags.id ?? `node-${hostname()}-${process.pid}`;
  const runtime = choiceFlag('ort', flags.ort, ['web', 'native'] as const, 'web');
  const api = new ApiClient(flags.url, { workerId, token, retryForMs: numberFlag('retry-ms', flags['retry-ms'], 60_000) });
  // With the API token, ask for the run's worker token: leases are then signed for a worker of this run.
  const workerToken = isWorkerToken(token) ? token : await api.workerToken(flags.run);
  const worker = NodeWorker.start({ runtime, threads: numberFlag('threads', flags.threads, 1) });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`worker ${workerId} joining run ${flags.run} at ${flags.url}`);
    const verbose = flags.verbose ? log : undefined;
    const report = await worker.run(new ApiClient(flags.url, { workerId, token: workerToken, retryForMs: numberFlag('retry-ms', flags['retry-ms'], 60_000) }), flags.run, stop.signal, {
      log: verbose,
      onLease: verbose && ((l) => verbose(`lease ${l.leaseId} ${l.kind} step ${l.step} shard ${l.shard}`)),
    });
    log(`worker ${workerId} ${report.reason}${report.state ? ` (run ${report.state})` : ''}: ${report.accepted} accepted, ${report.rejected} dropped of ${report.leases} leases`);
    return report;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await worker.dispose();
  }
}
