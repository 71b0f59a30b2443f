// `edgetrain status ID`: one run's progress; --watch follows it until it ends.
import { parseCommand } from './args';
import { TARGET_FLAGS, TARGET_USAGE, connectTarget, type Command } from './command';
import { progressKey, statusBlock } from './display';
import { EXIT_CODES_USAGE } from './errors';
import { endLine, exitCodeOf, watchRun } from './watch';

const FLAGS = { ...TARGET_FLAGS, watch: { type: 'boolean' }, json: { type: 'boolean' } } as const;

export const statusCommand: Command = {
  usage: `edgetrain status ID [options]   a run's state, epoch/step, loss, train/test accuracy, images/s, workers, ETA
  --watch                follow the run until it ends: refreshed in place on a terminal, a line per change
                         otherwise; the exit code is then the run's: 0 completed, 1 failed, 3 cancelled
  --json                 the API's status JSON (with --watch: a JSON line per change)
${TARGET_USAGE}
${EXIT_CODES_USAGE}`,
  async run(argv, ctx) {
    const { values: flags, args } = parseCommand(argv, FLAGS, 'status', ['ID']);
    const runId = (ctx.runId = args.ID!);
    const api = await connectTarget(flags, ctx);
    const { out } = ctx;
    if (!flags.watch) {
      const s = await api.status(runId);
      out.line(flags.json ? JSON.stringify(s) : statusBlock(s));
      return 0;
    }
    let first = true;
    let lastKey = '';
    const final = await watchRun(api, runId, {
      live: out.tty && !flags.json,
      write: out.write,
      line: flags.json ? () => undefined : out.line,
      onStatus: (s) => {
        if (flags.json) {
          if (progressKey(s) !== lastKey) out.line(JSON.stringify(s));
          lastKey = progressKey(s);
        } else if (first) out.line(statusBlock(s).split('\n')[0]);
        first = false;
      },
    });
    if (!flags.json) {
      if (final.error) out.line(`  error: ${final.error}`);
      out.line(endLine(final));
    }
    return exitCodeOf(final);
  },
};
