// `npm run bench -- <name> [options]`: benchmarks print one JSON object per line on stdout.
import { benchBundle } from './bundle';
import { benchCaptions } from './caption-precompute';
import { benchCluster } from './cluster';
import { benchCommit } from './commit';
import { benchCompression } from './compression';
import { benchCoordinator } from './coordinator';
import { benchIntegrity } from './integrity';
import { benchStep } from './step';
import { benchWorkerMemory } from './worker-memory';

const BENCHES: Record<string, (args: string[], print: (o: object) => void) => Promise<void>> = {
  step: benchStep,
  bundle: benchBundle,
  cluster: benchCluster,
  commit: benchCommit,
  compression: benchCompression,
  coordinator: benchCoordinator,
  integrity: benchIntegrity,
  captions: benchCaptions,
  'worker-memory': benchWorkerMemory,
};

const [name, ...args] = process.argv.slice(2);
const bench = name ? BENCHES[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [options]`);
  process.exit(2);
}
bench(args, (o) => console.log(JSON.stringify(o))).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
