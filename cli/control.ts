// `edgetrain cancel ID` and `edgetrain resume ID`: stop a run (its last applied step is committed and
// checkpointed) or continue a cancelled one from there.
import { parseCommand } from './args';
import { TARGET_FLAGS, TARGET_USAGE, connectTarget, type Command } from './command';
import { progressLine } from './display';
import { EXIT_CODES_USAGE } from './errors';

const FLAGS = { ...TARGET_FLAGS, json: { type: 'boolean' } } as const;

export const cancelCommand: Command = {
  usage: `edgetrain cancel ID [options]   cancel a run: its last applied step is committed and checkpointed (idempotent)
  --json                 the API's status JSON
${TARGET_USAGE}
${EXIT_CODES_USAGE}`,
  async run(argv, ctx) {
    const { values: flags, args } = parseCommand(argv, FLAGS, 'cancel', ['ID']);
    const runId = (ctx.runId = args.ID!);
    const api = await connectTarget(flags, ctx);
    const s = await api.cancel(runId);
    if (flags.json) ctx.out.line(JSON.stringify(s));
    else {
      ctx.out.line(
        s.state === 'cancelled'
          ? `run ${runId} cancelled at step ${s.step}/${s.totalSteps}: \`edgetrain resume ${runId}\` continues it`
          : `run ${runId} had already ${s.state} at step ${s.step}/${s.totalSteps}: nothing to cancel`,
      );
    }
    return 0;
  },
};

export const resumeCommand: Command = {
  usage: `edgetrain resume ID [options]   continue a cancelled run from its last committed step
  --json                 the API's status JSON
${TARGET_USAGE}
A run that is not cancelled is refused (exit 1). On Cloudflare the run's workers are fanned out again;
the local cluster (\`edgetrain start --serve\`) relaunches its own.
${EXIT_CODES_USAGE}`,
  async run(argv, ctx) {
    const { values: flags, args } = parseCommand(argv, FLAGS, 'resume', ['ID']);
    const runId = (ctx.runId = args.ID!);
    const api = await connectTarget(flags, ctx);
    const s = await api.resume(runId);
    if (flags.json) ctx.out.line(JSON.stringify(s));
    else ctx.out.line(`run ${runId} resumed: ${progressLine(s)}`);
    return 0;
  },
};
