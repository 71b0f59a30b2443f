// `npm run experiment -- <name> [options]`: long measurements whose results README quotes.
import { CliError } from '../cli/errors';
import { UsageError } from '../cli/args';
import { CROSS_DOMAIN_USAGE, crossDomainCommand } from './cross-domain';

const EXPERIMENTS: Record<string, { usage: string; run: (argv: string[]) => Promise<void> }> = {
  'cross-domain': { usage: CROSS_DOMAIN_USAGE, run: crossDomainCommand },
};

const [name, ...argv] = process.argv.slice(2);
const experiment = name ? EXPERIMENTS[name] : undefined;
if (!experiment) {
  console.error(`usage: npm run experiment -- <${Object.keys(EXPERIMENTS).join('|')}> [options]\n\n${Object.values(EXPERIMENTS).map((e) => e.usage).join('\n\n')}`);
  process.exit(2);
}
experiment.run(argv).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof UsageError || e instanceof CliError ? `error: ${e.message}` : e);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
