// `edgetrain run`: create a training run on the API (a deployment, or the local cluster), print how to
// follow it and how to add workers; --watch follows it to the end.
import { parseFlags } from './args';
import { TARGET_FLAGS, TARGET_USAGE, connectTarget, type Command } from './command';
import { runShape } from './display';
import { EXIT_CODES_USAGE } from './errors';
import { CLUSTER_USAGE, CONFIG_USAGE, RUN_DATA_USAGE, RUN_FLAGS, runRequestFromValues } from './run-flags';
import { endLine, exitCodeOf, watchRun } from './watch';

const FLAGS = { ...RUN_FLAGS, ...TARGET_FLAGS, watch: { type: 'boolean' }, json: { type: 'boolean' } } as const;

const usage = `edgetrain run [options]   create a training run on the API (the local cluster or --url)
${CONFIG_USAGE}
${CLUSTER_USAGE}
  --workers N            gradient-worker invocations to fan out to on Cloudflare (default 2)
  --dataset NAME         a prepared dataset (\`edgetrain prepare\`; default cifar10)
  --target-dataset NAME  a prepared shifted dataset: its test split is evaluated every epoch; DANN (--dann) trains on its train images
${RUN_DATA_USAGE}
  --watch                follow the run until it ends, as \`edgetrain status ID --watch\`
  --json                 print the API's answer (status + workerToken) as JSON
${TARGET_USAGE}
Prints the run id, its status URL and how to add a worker from any machine (with the run's worker
token when stdout is a terminal; --json always includes it). On the local cluster
(\`edgetrain start --serve\`) the cluster's own workers pick the run up.
${EXIT_CODES_USAGE}`;

export const runCommand: Command = {
  usage,
  async run(argv, ctx) {
    const flags = parseFlags(argv, FLAGS, 'run');
    const request = runRequestFromValues(flags);
    const api = await connectTarget(flags, ctx);
    const created = await api.createRun(request);
    ctx.runId = created.runId;
    const { out } = ctx;
    const url = ctx.target!.url;
    if (flags.json) out.line(JSON.stringify(created));
    else {
      out.line(`run ${created.runId} created: ${runShape(created)}`);
      out.line(`  status:  ${url}/v1/runs/${created.runId}  (\`edgetrain status ${created.runId} --watch\`)`);
      // The worker token goes to a terminal only: output piped into a log file must not hold it.
      const token = out.tty ? created.workerToken : '<its worker token, shown on a terminal or with --json; or the API token>';
      out.line(`  workers: EDGETRAIN_TOKEN=${token} edgetrain worker --url ${url} --run ${created.runId}`);
    }
    if (!flags.watch) return 0;
    const final = await watchRun(api, created.runId, { live: out.tty && !flags.json, write: out.write, line: flags.json ? out.note : out.line });
    if (!flags.json) out.line(endLine(final));
    return exitCodeOf(final);
  },
};
