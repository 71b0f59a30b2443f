#!/usr/bin/env node
// The `edgetrain` command.
import { runGradcheck } from './gradcheck';
import { UsageError } from './args';
import { CAPTIONS_USAGE, captionsCommand } from './captions';
import { PREPARE_USAGE, prepareCommand } from './prepare';
import { START_USAGE, startCommand } from './start';
import { TRAIN_USAGE, trainCommand } from './train';
import { WORKER_USAGE, workerCommand } from './worker';
import { loadOrt } from '../workers/ort/node';

const COMMANDS: Record<string, { usage: string; run: (argv: string[]) => Promise<number> }> = {
  start: { usage: START_USAGE, run: async (argv) => ((await startCommand(argv)).state === 'completed' ? 0 : 1) },
  prepare: { usage: PREPARE_USAGE, run: async (argv) => (await prepareCommand(argv), 0) },
  captions: { usage: CAPTIONS_USAGE, run: async (argv) => (await captionsCommand(argv), 0) },
  worker: { usage: WORKER_USAGE, run: async (argv) => ({ done: 0, stopped: 130, budget: 0, excluded: 3 })[(await workerCommand(argv)).reason] },
  train: { usage: TRAIN_USAGE, run: async (argv) => (await trainCommand(argv), 0) },
  gradcheck: {
    usage: 'edgetrain gradcheck   every gradient rule and preset against central finite differences',
    run: async () => {
      const results = await runGradcheck(await loadOrt('web', 1), console.log);
      const failed = results.filter((r) => !(r.error <= r.tolerance));
      console.log(failed.length ? `gradcheck FAILED: ${failed.length} of ${results.length} checks above tolerance` : `gradcheck passed: ${results.length} checks`);
      return failed.length ? 1 : 0;
    },
  },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name ? COMMANDS[name] : undefined;
  if (!command || rest.includes('--help')) {
    const usage = Object.values(COMMANDS).map((c) => c.usage).join('\n\n');
    if (name && !command) {
      console.error(`unknown command '${name}'; commands: ${Object.keys(COMMANDS).join(', ')}\n\n${usage}`);
      return 2;
    }
    console.log(usage);
    return name ? 0 : 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof UsageError || e instanceof Error ? `error: ${e.message}` : e);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
