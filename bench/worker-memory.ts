// `npm run bench -- worker-memory [--quick] [--preset NAME] [communication flags]`: the peak memory of
// one gradient-worker isolate (wasm heap + JS heap + array buffers) over a run of train leases and an
// eval pass, with the Workers defaults and with the defaults before them, and the coordinator
// isolate's peak; one JSON object per line. `--quick`: 2 steps and 1,000 test images instead of 4 and
// 2,000. `--diloco H`, `--gradients CODEC`, `--error-feedback`, `--param-codec CODEC` (as `start`'s)
// measure a run that communicates so (Workers defaults only).
import { parseArgs } from 'node:util';
import { communicationFromValues } from '../cli/run-flags';
import { measureWorkerMemory, type Defaults } from './isolate-memory';

const BUDGET_MIB = 100;
const PRESETS: readonly [preset: string, head: string][] = [['seed-cnn', 'align'], ['res-cnn', 'linear']];

export async function benchWorkerMemory(args: string[], print: (o: object) => void): Promise<void> {
  const quick = args.includes('--quick');
  const only = args.includes('--preset') ? args[args.indexOf('--preset') + 1] : undefined;
  const presets = PRESETS.filter(([preset]) => !only || preset === only);
  if (!presets.length) throw new Error(`--preset ${only}: one of ${PRESETS.map(([p]) => p).join(', ')}`);
  const { values } = parseArgs({ args, strict: false, options: { diloco: { type: 'string' }, gradients: { type: 'string' }, 'param-codec': { type: 'string' }, 'error-feedback': { type: 'boolean' } } });
  const communication = communicationFromValues(values as Parameters<typeof communicationFromValues>[0]);
  const communicates = Object.keys(communication).length > 0;
  const testImages = quick ? 1000 : 2000;
  for (const [preset, head] of presets) {
    for (const defaults of (communicates ? ['workers'] : ['workers', 'before']) as Defaults[]) {
      const r = await measureWorkerMemory({ preset, head, defaults, trainSteps: quick ? 2 : 4, testImages, timeoutMs: 300_000, communication }, args.includes('--verbose') ? (l) => console.error(l) : undefined);
      print({
        bench: 'worker-memory',
        preset,
        head,
        defaults,
        ...(communicates ? { communication } : {}),
        graphBatch: r.graphBatch,
        evalGraphBatch: r.evalGraphBatch,
        blockCacheMb: r.caches.blockCacheMb,
        leases: r.leases,
        peakWasmMiB: r.wasmMiB,
        peakJsHeapMiB: r.worker.jsHeapMiB,
        peakArrayBuffersMiB: r.worker.arrayBuffersMiB,
        peakMiB: r.peakMiB,
        estimateMiB: r.estimateMiB,
        budgetMiB: BUDGET_MIB,
        fits: r.peakMiB <= BUDGET_MIB,
        coordinatorPeakMiB: r.coordinator.sumMiB,
        coordinatorJsHeapMiB: r.coordinator.jsHeapMiB,
        samples: r.worker.samples,
      });
    }
  }
}
