// `edgetrain worker`: this machine joins a run as a gradient worker (Node, ORT in a worker thread),
// speaking the same lease/submit protocol as the Workers-runtime and browser workers. The API and the
// token resolve as for every command (cli/target.ts).
import { isWorkerToken } from '../shared/auth';
import { ApiClient } from '../workers/gradient/client';
import { NodeWorker } from '../workers/node/runtime';
import { choiceFlag, numberFlag, parseFlags, UsageError } from './args';
import { TARGET_FLAGS, TARGET_USAGE, type Command } from './command';
import { EXIT } from './errors';
import { TOKEN_ENV, resolveTarget } from './target';

const FLAGS = {
  ...TARGET_FLAGS,
  run: { type: 'string' },
  ort: { type: 'string' },
  threads: { type: 'string' },
  'retry-ms': { type: 'string' },
  verbose: { type: 'boolean' },
} as const;

const USAGE = `edgetrain worker --run ID [options]   join a run as a gradient worker from this machine (Node + onnxruntime-web)
  --run ID               the run to work on
  --ort web|native       onnxruntime-web WASM (default) or onnxruntime-node, when installed
  --threads N (1)        ORT intra-op threads
  --retry-ms N (60000)   how long to keep retrying while the API is unreachable or restarting
  --verbose              one line per lease taken and per lease dropped
${TARGET_USAGE}
  The token may be the run's worker token (\`edgetrain run\` prints it; it can only work on that run) or
  the API token. The run's coordinator gives this worker its id (a credential minted on joining, renewed
  while it works). The worker leaves when the run ends (exit 0) or on Ctrl-C (exit 130).
exit codes: 0 the run ended · 1 excluded by the coordinator after bad answers, or the API refused · 2 usage
            3 API unreachable · 4 token refused · 5 unknown run · 130 interrupted`;

export const workerCommand: Command = {
  usage: USAGE,
  async run(argv, ctx) {
    const flags = parseFlags(argv, FLAGS, 'worker');
    if (!flags.run) throw new UsageError('worker: --run ID is required (`edgetrain runs` lists the runs)');
    ctx.runId = flags.run;
    const target = (ctx.target = await resolveTarget(flags));
    if (!target.token) throw new UsageError(`worker: no token for ${target.url}: set ${TOKEN_ENV} to the run's worker token (\`edgetrain run\` prints it) or the API token`);
    const retryForMs = numberFlag('retry-ms', flags['retry-ms'], 60_000);
    const runtime = choiceFlag('ort', flags.ort, ['web', 'native'] as const, 'web');
    // With the API token, ask for the run's worker token: leases are then signed for a worker of this run.
    const token = isWorkerToken(target.token) ? target.token : await new ApiClient(target.url, { token: target.token, retryForMs }).workerToken(flags.run);
    const worker = NodeWorker.start({ runtime, threads: numberFlag('threads', flags.threads, 1) });
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const api = new ApiClient(target.url, { token, retryForMs });
      const { workerId } = await api.identity(flags.run);
      ctx.out.line(`worker ${workerId} joining run ${flags.run} at ${target.url}`);
      const verbose = flags.verbose ? ctx.out.line : undefined;
      const report = await worker.run(api, flags.run, stop.signal, {
        log: verbose,
        onLease: verbose && ((l) => verbose(`lease ${l.leaseId} ${l.kind} step ${l.step} shard ${l.shard}`)),
      });
      ctx.out.line(`worker ${api.workerId ?? workerId} ${report.reason}${report.state ? ` (run ${report.state})` : ''}: ${report.accepted} accepted, ${report.rejected} dropped of ${report.leases} leases`);
      if (report.reason === 'excluded') {
        ctx.out.note(`worker: the coordinator excluded this worker from run ${flags.run} after repeated bad answers (see \`edgetrain status ${flags.run} --json\`, "workers")`);
        return EXIT.failed;
      }
      return report.reason === 'stopped' ? EXIT.interrupted : EXIT.ok;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await worker.dispose();
    }
  },
};
