// `edgetrain browser`: serves the browser worker page (workers/browser/) on this machine; with --run,
// prints the page's URL for that run (API, run, worker token in the fragment), ready to open.
import { ApiClient } from '../workers/gradient/client';
import { isWorkerToken } from '../shared/auth';
import { numberFlag, parseFlags } from './args';
import { TARGET_FLAGS, TARGET_USAGE, type Command } from './command';
import { serveBrowserWorker } from './cluster/browser';
import { joinLink } from './cluster/deploy-assets';
import { EXIT } from './errors';
import { resolveTarget } from './target';

const FLAGS = { ...TARGET_FLAGS, run: { type: 'string' }, port: { type: 'string' }, ep: { type: 'string' } } as const;

const USAGE = `edgetrain browser [--run ID] [options]   serve the browser gradient-worker page (WebGPU when the browser offers it, else WASM)
  --run ID               print the page's URL for this run (its worker token in the URL fragment when
                         stdout is a terminal)
  --ep auto|webgpu|wasm  the execution provider the page should use (default auto)
  --port N (8788)        where the page is served (0 = any free port)
${TARGET_USAGE}
Without --run the page asks for the API URL, run id and worker token. Ctrl-C stops serving.`;

export const browserCommand: Command = {
  usage: USAGE,
  async run(argv, ctx) {
    const flags = parseFlags(argv, FLAGS, 'browser');
    const served = await serveBrowserWorker({ port: numberFlag('port', flags.port, 8788) });
    let url = served.url;
    let apiServed: string | undefined;
    if (flags.run) {
      ctx.runId = flags.run;
      const target = (ctx.target = await resolveTarget(flags));
      const token = target.token && isWorkerToken(target.token) ? target.token : await new ApiClient(target.url, { token: target.token }).workerToken(flags.run);
      // The token goes to a terminal only: output piped into a log file must not hold it.
      const shown = ctx.out.tty ? token : undefined;
      const fragment = new URLSearchParams({ api: target.url, run: flags.run, ...(shown ? { token: shown } : {}), ep: flags.ep ?? 'auto' });
      url = `${served.url}#${fragment}`;
      apiServed = joinLink(target.url, flags.run, shown);
    }
    ctx.out.line(`browser worker page: ${url}`);
    // The API serves the page too (deployed, or a local cluster from `edgetrain start`): no CLI needed.
    if (apiServed) ctx.out.line(`  or the API's own page (WASM only): ${apiServed}`);
    if (!flags.run) ctx.out.line('  (the page asks for the API URL, the run id and its worker token; `edgetrain run` prints the token)');
    else if (!ctx.out.tty) ctx.out.line("  (the page asks for the run's worker token: the links with it are shown on a terminal)");
    ctx.out.line('serving until Ctrl-C');
    await new Promise<void>((resolve) => process.once('SIGINT', resolve));
    await served.close();
    return EXIT.interrupted;
  },
};
