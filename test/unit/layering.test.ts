// The codebase's layering, read from its import graph: every module imports only from its own layer
// or lower ones, and no modules import each other in a cycle (type-only imports included).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { cycles, readImportGraph, upwardEdges, type ImportGraph } from '../support/import-graph';

/**
 * Lowest first. shared/ is pure code for every runtime, itself layered from the schema builders (every
 * config's bounds are written with them) and the graph builder up to the training loop, with the contract modules (shared/*.ts: protocol, auth, …) on top; then the
 * coordinator, the Worker entry points (API, gradient workers, ORT loading), the CLI, the benches, the
 * scaling simulator, the experiments and the tests. `examples/` imports only onnxruntime.
 */
export const LAYERS = [
  'shared/schema',
  'shared/onnx',
  'shared/wire',
  'shared/data',
  'shared/optim',
  'shared/autodiff',
  'shared/models',
  'shared/text',
  'shared/training',
  'shared',
  'coordinator',
  'workers',
  'cli',
  'bench',
  'sim',
  'experiments',
  'examples',
  'test',
  'vitest.config.ts',
];

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('layering of the import graph', () => {
  const graph = readImportGraph(ROOT);

  it('reads the whole project: every folder of the layout, hundreds of edges', () => {
    const files = [...graph.keys()];
    for (const folder of ['shared/', 'coordinator/', 'workers/', 'cli/', 'bench/', 'sim/', 'experiments/', 'test/']) expect(files.some((f) => f.startsWith(folder)), folder).toBe(true);
    expect([...graph.values()].reduce((n, t) => n + t.length, 0)).toBeGreaterThan(300);
    expect(graph.get('coordinator/coordinator.ts')).toContain('coordinator/run-store.ts');
  });

  it('has no import from a lower layer to a higher one', () => {
    expect(upwardEdges(graph, LAYERS)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('the checks find an upward edge, a file outside the layers and a cycle in a made-up graph', () => {
    const bad: ImportGraph = new Map([
      ['shared/onnx/graph.ts', ['shared/training/trainer.ts']],
      ['shared/training/trainer.ts', ['shared/training/checkpoint.ts']],
      ['shared/training/checkpoint.ts', ['shared/training/trainer.ts']],
      ['scripts/x.ts', []],
    ]);
    expect(upwardEdges(bad, LAYERS)).toEqual([
      'shared/onnx/graph.ts (shared/onnx) imports shared/training/trainer.ts (shared/training), a higher layer',
      'scripts/x.ts is in no layer',
    ]);
    expect(cycles(bad)).toEqual([['shared/training/checkpoint.ts', 'shared/training/trainer.ts']]);
  });
});

/**
 * The import chains from `entry` to any input matching `banned`, in a bundle built as wrangler builds
 * it (esbuild, workerd conditions): package imports included, which the project graph above omits.
 */
async function bannedChains(root: string, entry: string, banned: RegExp): Promise<string[]> {
  const result = await build({
    entryPoints: [path.join(root, entry)],
    absWorkingDir: root,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['cloudflare:*', '*.wasm'],
    metafile: true,
    logLevel: 'silent',
  });
  const inputs: Metafile['inputs'] = result.metafile.inputs;
  // Breadth-first from the entry: the first path found to each input is a shortest one.
  const from = new Map<string, string | undefined>([[entry, undefined]]);
  const queue = [entry];
  const chains: string[] = [];
  while (queue.length) {
    const file = queue.shift()!;
    for (const imp of inputs[file]?.imports ?? []) {
      if (from.has(imp.path)) continue;
      from.set(imp.path, file);
      if (banned.test(imp.path)) {
        const chain = [imp.path];
        for (let at = from.get(imp.path); at; at = from.get(at)) chain.unshift(at);
        chains.push(chain.join(' → '));
      } else queue.push(imp.path);
    }
  }
  return chains;
}

const ORT = /(^|\/)node_modules\/onnxruntime-web\/|\.wasm$/;

describe('the API script carries no onnxruntime-web', () => {
  it('workers/index.ts reaches neither onnxruntime-web nor a .wasm module; the gradient script does', async () => {
    expect(await bannedChains(ROOT, 'workers/index.ts', ORT)).toEqual([]);
    // The check itself finds ORT where it is.
    expect((await bannedChains(ROOT, 'workers/gradient/consumer.ts', ORT)).some((c) => c.includes('onnxruntime-web'))).toBe(true);
  }, 30_000);
});
