// Seeded feeds for every input of a compiled graph: initial parameters, buffers and random data.
// Used to check and time graphs without a dataset (gradient checks, runtime comparisons, benchmarks).
import { sample } from '../autodiff/gradcheck';
import { mulberry32 } from '../data/shuffle';
import { numel } from '../onnx/graph';
import type { Feed } from '../onnx/session';
import type { CompiledGraph } from './compile';
import { flatLayout, initBuffers, initParameters } from './params';

export function randomFeeds(graph: CompiledGraph, classes: number, seed: number, lambda = 0.5): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  const addFlat = (specs: CompiledGraph['params'] | CompiledGraph['buffers'], flat: Float32Array) => {
    for (const s of flatLayout(specs).slices) feeds[s.name] = { data: flat.slice(s.offset, s.offset + s.size), dims: s.shape };
  };
  addFlat(graph.params, initParameters(graph.params, seed));
  addFlat(graph.buffers, initBuffers(graph.buffers));
  const rng = mulberry32(seed);
  for (const d of graph.dataInputs) {
    const kind = d.dtype === 'int64' ? { labels: classes } : d.name === 'lambda' ? { constant: lambda } : 'normal';
    feeds[d.name] = { data: sample(kind, numel(d.shape), rng), dims: d.shape };
  }
  return feeds;
}
