// `edgetrain metrics ID`: the run's log: a line per training step (loss, accuracy, step time) and per
// epoch evaluation; --follow keeps printing new ones until the run ends.
import type { RunMetrics } from '../shared/protocol';
import { intFlag, parseCommand } from './args';
import { TARGET_FLAGS, TARGET_USAGE, connectTarget, type Command } from './command';
import { metricLines } from './display';
import { EXIT_CODES_USAGE } from './errors';
import { FINAL_STATES } from './watch';

const FLAGS = { ...TARGET_FLAGS, since: { type: 'string' }, json: { type: 'boolean' }, follow: { type: 'boolean' }, 'interval-ms': { type: 'string' } } as const;

/** The API returns at most this many steps per call. */
const PAGE = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const metricsCommand: Command = {
  usage: `edgetrain metrics ID [options]   per-step loss, accuracy and step time; per-epoch test loss and accuracy
                         (and target's; a DANN run's domain classifier loss and accuracy per step and epoch)
  --since STEP           only steps after STEP (default: all)
  --json                 the API's JSON ({"steps": [...], "evals": [...]}); with --follow, one JSON line per entry
  --follow               keep printing new steps and evaluations until the run ends
  --interval-ms N (2000) how often --follow asks
${TARGET_USAGE}
${EXIT_CODES_USAGE}`,
  async run(argv, ctx) {
    const { values: flags, args } = parseCommand(argv, FLAGS, 'metrics', ['ID']);
    const runId = (ctx.runId = args.ID!);
    let since = flags.since === undefined ? -1 : intFlag('since', flags.since, 0, 0);
    const intervalMs = intFlag('interval-ms', flags['interval-ms'], 2000, 100);
    const api = await connectTarget(flags, ctx);
    const { out } = ctx;
    if (!flags.follow) {
      const m = await api.metrics(runId, since);
      if (flags.json) out.line(JSON.stringify(m));
      else {
        const lines = metricLines(m.steps, m.evals.filter((e) => e.step > since));
        for (const l of lines) out.line(l.line);
        if (!lines.length) out.line(`no metrics for run ${runId}${since >= 0 ? ` after step ${since}` : ''} yet`);
      }
      return 0;
    }
    const from = since;
    const printed = new Set<number>();
    for (;;) {
      // The state first: metrics read after it hold everything up to that state.
      const { state } = await api.status(runId);
      let m: RunMetrics;
      do {
        m = await api.metrics(runId, since);
        const last = m.steps.length ? m.steps[m.steps.length - 1].step : since;
        // An epoch's evaluation is printed once, after its last step.
        const evals = m.evals.filter((e) => e.step > from && e.step <= last && !printed.has(e.epoch));
        for (const l of metricLines(m.steps, evals)) out.line(flags.json ? JSON.stringify(l.json) : l.line);
        for (const e of evals) printed.add(e.epoch);
        since = last;
      } while (m.steps.length === PAGE);
      if (FINAL_STATES.includes(state)) {
        if (!flags.json) out.line(`run ${runId} ${state}`);
        return 0;
      }
      await sleep(intervalMs);
    }
  },
};
