// `edgetrain runs`: the runs the API knows, newest first.
import type { RunSummary } from '../shared/protocol';
import { parseFlags } from './args';
import { TARGET_FLAGS, TARGET_USAGE, connectTarget, type Command } from './command';
import { runsTable } from './display';
import { EXIT_CODES_USAGE } from './errors';

const FLAGS = { ...TARGET_FLAGS, json: { type: 'boolean' } } as const;

export const runsCommand: Command = {
  usage: `edgetrain runs [options]   the runs on the API, newest first: id, state, created, model
  --json                 the API's JSON ({"runs": [...]})
${TARGET_USAGE}
${EXIT_CODES_USAGE}`,
  async run(argv, ctx) {
    const flags = parseFlags(argv, FLAGS, 'runs');
    const api = await connectTarget(flags, ctx);
    // The API answers RunSummary (with preset and head); the client's type names the common fields.
    const { runs } = (await api.listRuns()) as { runs: Partial<RunSummary>[] };
    if (flags.json) ctx.out.line(JSON.stringify({ runs }));
    else if (!runs.length) ctx.out.line(`no runs at ${ctx.target!.url} yet: \`edgetrain run\` creates one`);
    else ctx.out.line(runsTable(runs));
    return 0;
  },
};
