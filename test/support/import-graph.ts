// The project's module graph as its sources state it (static, dynamic and type-only imports and
// re-exports), and the two properties the layering test asks of it: no edge up the layers, no cycle.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** Folders that hold no project source. */
const SKIPPED = new Set(['node_modules', '.git', '.edgetrain', '.wrangler', 'dist', 'test-artifacts']);

/** file → the project files it imports (paths relative to the root, '/'-separated). */
export type ImportGraph = ReadonlyMap<string, readonly string[]>;

function sources(root: string, dir = ''): string[] {
  return readdirSync(path.join(root, dir)).flatMap((name) => {
    const rel = dir ? `${dir}/${name}` : name;
    if (SKIPPED.has(name)) return [];
    if (statSync(path.join(root, rel)).isDirectory()) return sources(root, rel);
    return /\.(ts|mts|mjs)$/.test(name) && !name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** The file a relative specifier names (TypeScript's resolution: `.js` → `.ts`, extensionless, index). */
function resolve(root: string, from: string, specifier: string): string | undefined {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  const candidates = [base, base.replace(/\.m?js$/, '.ts'), `${base}.ts`, `${base}/index.ts`];
  return candidates.find((c) => existsSync(path.join(root, c)) && statSync(path.join(root, c)).isFile());
}

export function readImportGraph(root: string): ImportGraph {
  const graph = new Map<string, string[]>();
  for (const file of sources(root)) {
    const info = ts.preProcessFile(readFileSync(path.join(root, file), 'utf8'), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(root, file, s) ?? `(unresolved) ${s}`)
      // Non-code assets (the ORT .wasm a worker imports) are not modules of the graph.
      .filter((t) => /\.(ts|mts|mjs)$/.test(t) || t.startsWith('(unresolved)'));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The layer of a file: the index of the longest prefix in `layers` that contains it, or -1. */
export function layerOf(file: string, layers: readonly string[]): number {
  let best = -1;
  layers.forEach((prefix, i) => {
    if ((file === prefix || file.startsWith(`${prefix}/`) || file === `${prefix}.ts`) && (best < 0 || prefix.length > layers[best].length)) best = i;
  });
  return best;
}

/** Every edge from a file to one in a later (higher) layer, and every file in no layer. */
export function upwardEdges(graph: ImportGraph, layers: readonly string[]): string[] {
  const problems: string[] = [];
  for (const [from, targets] of graph) {
    const a = layerOf(from, layers);
    if (a < 0) problems.push(`${from} is in no layer`);
    for (const to of targets) {
      const b = layerOf(to, layers);
      if (b > a) problems.push(`${from} (${layers[a]}) imports ${to} (${layers[b]}), a higher layer`);
      if (to.startsWith('(unresolved)')) problems.push(`${from} imports ${to}`);
    }
  }
  return problems;
}

/** The strongly connected components of more than one file (or a file importing itself): each a cycle. */
export function cycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}
