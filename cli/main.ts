#!/usr/bin/env node
// The `edgetrain` command: a table of commands, each loaded only when it runs (so `status` does not
// load ORT or Miniflare), `--help` at every level, and one place (cli/errors.ts) that turns any error
// into a short message and an exit code.
import { readFileSync } from 'node:fs';
import { UsageError, closest } from './args';
import { processOutput, type Command, type CommandContext } from './command';
import { EXIT, EXIT_CODES_USAGE, debugEnabled, explain, stackOf } from './errors';
import { lastTarget } from './target';

interface Entry {
  readonly group: string;
  readonly summary: string;
  load(): Promise<Command>;
}

const COMMANDS: Record<string, Entry> = {
  start: {
    group: 'local cluster and data',
    summary: 'the local cluster and one run, followed to the end (--serve: the cluster only, until Ctrl-C)',
    load: async () => (await import('./start')).startCommand,
  },
  prepare: {
    group: 'local cluster and data',
    summary: 'upload CIFAR-10 as dataset blocks (once; a re-run uploads nothing)',
    load: async () => (await import('./prepare')).prepareCommand,
  },
  captions: {
    group: 'local cluster and data',
    summary: 'embed a caption set once with BERT and store it in KV; prints its hash',
    load: async () => (await import('./embed-captions')).captionsCommand,
  },
  run: { group: 'runs', summary: 'create a run on the API (--watch follows it); prints how to add workers', load: async () => (await import('./run')).runCommand },
  runs: { group: 'runs', summary: 'the runs, newest first: id, state, created, model', load: async () => (await import('./runs')).runsCommand },
  status: { group: 'runs', summary: "a run's progress: epoch/step, loss, accuracy, images/s, workers, ETA (--watch: live)", load: async () => (await import('./status')).statusCommand },
  metrics: { group: 'runs', summary: 'per-step loss/accuracy/step time and per-epoch evaluation (--follow)', load: async () => (await import('./metrics')).metricsCommand },
  cancel: { group: 'runs', summary: 'cancel a run (its last step is committed and checkpointed)', load: async () => (await import('./control')).cancelCommand },
  resume: { group: 'runs', summary: 'continue a cancelled run', load: async () => (await import('./control')).resumeCommand },
  export: { group: 'runs', summary: "write a run's inference model (ONNX)", load: async () => (await import('./export')).exportCommand },
  browser: { group: 'runs', summary: 'serve the browser gradient-worker page (WebGPU or WASM); --run prints its URL for a run', load: async () => (await import('./browser')).browserCommand },
  worker: { group: 'runs', summary: 'join a run as a gradient worker from this machine', load: async () => (await import('./worker')).workerCommand },
  train: { group: 'one process', summary: 'the single-process trainer (the reference the cluster must equal)', load: async () => (await import('./train')).trainCommand },
  gradcheck: { group: 'one process', summary: 'every gradient rule and preset against central finite differences', load: async () => (await import('./gradcheck')).gradcheckCommand },
};

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  const groups = new Map<string, string[]>();
  for (const [name, c] of Object.entries(COMMANDS)) groups.set(c.group, [...(groups.get(c.group) ?? []), `  ${name.padEnd(width)}${c.summary}`]);
  return `edgetrain ${version()}: distributed training of ONNX training graphs on Cloudflare Workers

usage: edgetrain COMMAND [options]        edgetrain COMMAND --help (or edgetrain help COMMAND) for its options

${[...groups].map(([group, lines]) => `${group}\n${lines.join('\n')}`).join('\n\n')}

The run commands talk to --url, else $EDGETRAIN_URL, else "url" in .edgetrain/config.json or
~/.config/edgetrain/config.json, else the local cluster at http://127.0.0.1:8787 (\`edgetrain start --serve\`).
Token: $EDGETRAIN_TOKEN, else "token" in the config file, else (local URL) .edgetrain/state/api-token.
--debug (or EDGETRAIN_DEBUG=1) prints stack traces.
${EXIT_CODES_USAGE}`;
}

function unknownCommand(name: string): UsageError {
  if (name.startsWith('-')) return new UsageError(`'${name}' before a command: options go after it, as in edgetrain COMMAND [options]`);
  const guess = closest(name, Object.keys(COMMANDS));
  return new UsageError(`unknown command '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}`);
}

async function main(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const [name, ...rest] = argv.filter((a) => a !== '--debug');
  if (name === undefined) {
    ctx.out.note(overview());
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    ctx.out.line(overview());
    return EXIT.ok;
  }
  if (name === '--version' || name === 'version') {
    ctx.out.line(version());
    return EXIT.ok;
  }
  if (name === 'help') {
    const entry = COMMANDS[rest[0]];
    if (!entry || rest.length > 1) throw rest.length > 1 ? new UsageError(`help takes one command, not '${rest.join(' ')}'`) : unknownCommand(rest[0]);
    ctx.out.line((await entry.load()).usage);
    return EXIT.ok;
  }
  const entry = COMMANDS[name];
  if (!entry) throw unknownCommand(name);
  ctx.command = name;
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    ctx.out.line(command.usage);
    return EXIT.ok;
  }
  return command.run(rest, ctx);
}

const argv = process.argv.slice(2);
const ctx: CommandContext = { out: processOutput() };
const fail = (e: unknown) => {
  const { message, code } = explain(e, { command: ctx.command, target: ctx.target ?? lastTarget(), runId: ctx.runId });
  console.error(message);
  if (debugEnabled(argv)) console.error(stackOf(e));
  process.exit(code);
};
process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);
// Output piped into a reader that stopped (`edgetrain runs | head -1`) is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' ? process.exit(EXIT.ok) : fail(e)));
main(argv, ctx).then((code) => process.exit(code), fail);
