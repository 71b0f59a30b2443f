import { differentiate } from '../autodiff/differentiate';
import { DEFAULT_AUTODIFF_OPTIONS, type AutodiffOptions } from '../autodiff/rule';
import { GraphBuilder, type DType, type Shape, type Value } from '../onnx/graph';
import { matrixFlops } from '../onnx/flops';
import * as op from '../onnx/ops';
import { ModelBuilder, l2Normalize, linear, type Domain, type GraphMode } from './layers';
import { correctCount, crossEntropy } from './loss';
import { flatLayout, type BufferSpec, type ParamSpec } from './params';
import { checkModelConfig, findBackbone, findHead, type ModelConfig } from './presets';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export interface CompiledGraph {
  readonly bytes: Uint8Array;
  /** Data inputs (image, label, captions, …); parameters and buffers are fed by name. */
  readonly dataInputs: readonly TensorSpec[];
  readonly params: readonly ParamSpec[];
  readonly buffers: readonly BufferSpec[];
  readonly outputs: readonly string[];
  /** Matrix-op FLOPs of one run of the graph (see matrixFlops). */
  readonly flops: number;
}

export const gradOutputName = (param: string) => `grad.${param}`;
/** A DANN training graph's domain-classifier loss (mean over source and target) and correct count. */
export const DOMAIN_LOSS = 'domain_loss';
export const DOMAIN_CORRECT = 'domain_correct';

const DOMAIN_HIDDEN = 64;

interface Forward {
  m: ModelBuilder;
  dataInputs: TensorSpec[];
  logits: Value;
  label: Value;
  /** DANN's domain classifier, when the config adds it (training graphs only). */
  domain: { loss: Value; correct: Value } | null;
}

/**
 * `pixels`: instead of the normalised `image`, the graph takes raw byte values (0–255, as float32) as
 * `pixels` and normalises them itself through this 3 × 256 table, exactly as the data feeder does.
 */
function forward(config: ModelConfig, batch: number, mode: GraphMode, name: string, pixels?: Float32Array, domain: Domain = 'source'): Forward {
  checkModelConfig(config);
  const backbone = findBackbone(config.preset);
  const head = findHead(config.head);
  const b = new GraphBuilder(name);
  const m = new ModelBuilder(b, mode);
  const dataInputs: TensorSpec[] = [];
  const input = (n: string, dtype: DType, shape: Shape) => {
    dataInputs.push({ name: n, dtype, shape });
    return b.input(n, dtype, shape);
  };
  const image = pixels ? normalizePixels(b, input('pixels', 'float32', [batch, 3, 32, 32]), pixels) : input('image', 'float32', [batch, 3, 32, 32]);
  const label = input('label', 'int64', [batch]);
  const headShape = { batch, classes: config.classes, captionsPerClass: config.captionsPerClass };
  const textSpec = head.textInput(headShape);
  const text = textSpec ? input(textSpec.name, 'float32', textSpec.shape) : null;

  if (!(config.dann && mode === 'train')) {
    const features = m.inDomain(domain, () => backbone.build(m, image));
    return { m, dataInputs, logits: head.build(m, features, text, headShape), label, domain: null };
  }
  // DANN: the unlabelled target images run through the same image branch in a pass of their own, so
  // each domain's batch norm sees only its own images (and keeps its own running statistics). A
  // domain classifier behind gradient reversal learns to tell the two apart while the features learn
  // not to let it.
  const target = input('target_image', 'float32', [batch, 3, 32, 32]);
  const lambda = input('lambda', 'float32', []);
  const source = backbone.build(m, image);
  const targetFeatures = m.inDomain('target', () => backbone.build(m, target));
  const logits = head.build(m, source, text, headShape);
  // The domain classifier reads the features scaled to unit length. On the raw features the reversed
  // gradient can fool it without bound by growing them (nothing else limits their scale: the align
  // and attention heads normalise them too), and the domain loss ran away: 0.61 → 37 within three
  // epochs while test accuracy fell from 38.5 % to 16.6 % (seed-cnn/align, docs/internals.md).
  const features = l2Normalize(b, op.concat(b, [source, targetFeatures], 0));
  const hidden = op.relu(b, linear(m, 'domain.fc1', op.gradReverse(b, features, lambda), DOMAIN_HIDDEN));
  const domainLogits = linear(m, 'domain.fc2', hidden, 2);
  const domainLabels = b.int64s(Array.from({ length: 2 * batch }, (_, i) => (i < batch ? 0 : 1)));
  return { m, dataInputs, logits, label, domain: { loss: crossEntropy(b, domainLogits, domainLabels), correct: correctCount(b, domainLogits, domainLabels) } };
}

const graphName = (c: ModelConfig, kind: string, batch: number) =>
  `${c.preset}-${c.head}${c.dann ? '-dann' : ''}-${kind}-b${batch}`;

/**
 * The training graph: inputs are the parameters, buffers and data; outputs `loss`, `correct`,
 * `grad.<param>` for every parameter (in `params` order) and `stat.<buffer>` batch statistics.
 */
export function buildTrainingGraph(
  config: ModelConfig,
  batch: number,
  autodiff: AutodiffOptions = DEFAULT_AUTODIFF_OPTIONS,
): CompiledGraph {
  const { m, dataInputs, logits, label, domain } = forward(config, batch, 'train', graphName(config, 'train', batch));
  const b = m.b;
  const classLoss = crossEntropy(b, logits, label, config.labelSmoothing);
  const objective = domain ? op.add(b, classLoss, domain.loss) : classLoss;
  const grads = differentiate(b, objective, m.paramValues(), autodiff);
  const outputs = [b.output(classLoss, 'loss'), b.output(correctCount(b, logits, label), 'correct')];
  if (domain) outputs.push(b.output(domain.loss, DOMAIN_LOSS), b.output(domain.correct, DOMAIN_CORRECT));
  m.params.forEach((p, i) => outputs.push(b.output(grads[i], gradOutputName(p.name))));
  for (const s of m.stats) outputs.push(b.output(s.value, s.buffer.statOutput));
  return compiled(m, dataInputs, outputs);
}

function compiled(m: ModelBuilder, dataInputs: TensorSpec[], outputs: Value[]): CompiledGraph {
  const flops = matrixFlops(m.b.liveNodes().nodes);
  return { bytes: m.b.serialize(), dataInputs, params: m.params, buffers: m.buffers, outputs: outputs.map((o) => o.name), flops };
}

/**
 * The parameters and buffers a training run holds (DANN's domain classifier included), in flat
 * order, without building the backward pass: what a coordinator needs to initialise and update.
 */
export function trainingLayout(config: ModelConfig): { params: readonly ParamSpec[]; buffers: readonly BufferSpec[] } {
  const { m } = forward(config, 1, 'train', graphName(config, 'layout', 1));
  return { params: m.params, buffers: m.buffers };
}

/**
 * Forward only, with running statistics: outputs `loss` (unsmoothed), `correct` and `logits`.
 * `domain` 'target' reads a DANN run's target-domain statistics (`target.<buffer>`).
 */
export function buildEvalGraph(config: ModelConfig, batch: number, domain: Domain = 'source'): CompiledGraph {
  const { m, dataInputs, logits, label } = forward(config, batch, 'eval', graphName(config, `eval-${domain}`, batch), undefined, domain);
  const b = m.b;
  const outputs = [
    b.output(crossEntropy(b, logits, label), 'loss'),
    b.output(correctCount(b, logits, label), 'correct'),
    b.output(logits, 'logits'),
  ];
  return compiled(m, dataInputs, outputs);
}

/**
 * Forward in training mode over one domain's images, outputting only their batch statistics
 * (`stat.<buffer>`): what AdaBN averages to re-estimate batch norm on a target domain.
 */
export function buildStatsGraph(config: ModelConfig, batch: number): CompiledGraph {
  const { m, dataInputs } = forward({ ...config, dann: false }, batch, 'train', graphName(config, 'stats', batch));
  return compiled(m, dataInputs, m.stats.map((s) => m.b.output(s.value, s.buffer.statOutput)));
}

export interface InferenceWeights {
  readonly params: Float32Array;
  readonly buffers: Float32Array;
  /** Class caption embeddings to bake in (align/attention heads), by input name. */
  readonly text?: ReadonlyMap<string, Float32Array>;
  /** The training normalisation as a 3 × 256 table: the model then takes raw `pixels`. */
  readonly pixels?: Float32Array;
  /** Whose batch-norm statistics to bake in: a DANN run keeps the target domain's too. Default source. */
  readonly domain?: Domain;
}

/** The table lookup the data feeder does: byte value v of channel c → table[c·256 + v]. */
function normalizePixels(b: GraphBuilder, pixels: Value, table: Float32Array): Value {
  if (table.length !== 3 * 256) throw new Error(`pixel normalisation table: ${table.length} values, expected 768`);
  const offsets = b.constant(new BigInt64Array([0n, 256n, 512n]), [1, 3, 1, 1]);
  return op.gather(b, b.constant(table, [768]), op.add(b, op.cast(b, pixels, 'int64'), offsets));
}

/**
 * A self-contained model: input `image` [batch,3,32,32] normalised as in training, or with
 * `weights.pixels` raw `pixels` (byte values 0–255 as float32, channel-major as in the CIFAR-10
 * records), plus `caption` for the concat head; outputs `logits` and `probabilities`. Weights, class
 * captions and the normalisation are baked in. `weights` are the run's flat vectors (trainingLayout):
 * what only training uses (DANN's domain classifier, the other domain's statistics) is left out.
 */
export function buildInferenceModel(config: ModelConfig, weights: InferenceWeights, batch = 1): Uint8Array {
  const domain = weights.domain ?? 'source';
  const { m, logits } = forward({ ...config, dann: false }, batch, 'eval', graphName(config, `inference-${domain}`, batch), weights.pixels, domain);
  const b = m.b;
  b.output(logits, 'logits');
  b.output(op.softmax(b, logits, -1), 'probabilities');
  const run = trainingLayout(config);
  const bake = new Map<string, Float32Array>();
  const bakeFlat = (needed: readonly { name: string }[], runSpecs: readonly { name: string; shape: Shape }[], flat: Float32Array, what: string) => {
    const { slices, size } = flatLayout(runSpecs);
    if (flat.length !== size) throw new Error(`inference model: ${what} has ${flat.length} values, the run's layout needs ${size}`);
    const byName = new Map(slices.map((s) => [s.name, s]));
    for (const { name } of needed) {
      const s = byName.get(name);
      if (!s) throw new Error(`inference model: the run has no ${what} ${name}${domain === 'target' ? ' (target-domain statistics exist only in DANN runs)' : ''}`);
      bake.set(name, flat.subarray(s.offset, s.offset + s.size));
    }
  };
  bakeFlat(m.params, run.params, weights.params, 'parameters');
  bakeFlat(m.buffers, run.buffers, weights.buffers, 'buffers');
  for (const [name, data] of weights.text ?? []) bake.set(name, data);
  return b.serialize({ bake, docString: `edgetrain ${config.preset}/${config.head}: logits over ${config.classes} classes` });
}
