// `npm run bench -- captions [--quick]`: the caption precompute with the random-weight test BERT
// (768 hidden, 12 heads, 2 layers, the bert-base-uncased vocab): encoder start-up, encode throughput by
// batch size, and the end-to-end precompute through the local cluster's API into KV (miss, then hit),
// with the bytes each stored set takes. One JSON object per line. Numbers are for the CPU (onnxruntime
// web, one thread, as `edgetrain captions` runs it); the random weights change nothing about speed.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { DEV_VOCAB, encoderFromFlags } from '../cli/embed-captions';
import { startCoordinator, type LocalCoordinator } from '../cli/cluster/local';
import { buildRandomBert } from '../shared/text/bert-graph';
import { CAPTIONS_PREFIX, precomputeCaptionSet, type ClassCaptions, type PrecomputeReport } from '../shared/text/caption-store';
import { CIFAR10_CAPTIONS, CIFAR10_CAPTION_SET_NAME } from '../shared/text/cifar10-captions';
import type { CaptionEncoder } from '../shared/text/encoder';
import { WordPieceTokenizer } from '../shared/text/wordpiece';
import { ApiClient } from '../workers/gradient/client';
import { median } from '../shared/stats';

const LAYERS = 2;
const HIDDEN = 768;
const HEADS = 12;
const POOLING = 'cls';
/** `edgetrain captions`' default --batch-size: the end-to-end precompute encodes in batches of this. */
const PRECOMPUTE_BATCH = 16;
const RUNS = 3;
const TARGET_CAPTIONS = 256;

const ms = (t0: number) => +(performance.now() - t0).toFixed(1);
const round = (x: number, digits = 2) => +x.toFixed(digits);

/** The texts in chunks of `batch`, one session run each (the encoder's own batch size is at least `batch`). */
async function encodeInBatches(encoder: CaptionEncoder, texts: readonly string[], batch: number): Promise<Float32Array> {
  const out = new Float32Array(texts.length * encoder.dim);
  for (let i = 0; i < texts.length; i += batch) out.set(await encoder.encode(texts.slice(i, i + batch)), i * encoder.dim);
  return out;
}

/** `count` texts: the CIFAR-10 captions, cycled. */
function cifarTexts(count: number): string[] {
  const flat = CIFAR10_CAPTIONS.flat();
  return Array.from({ length: count }, (_, i) => flat[i % flat.length]);
}

const NOUNS = ['airplane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const ADJECTIVES = ['small', 'large', 'blurry', 'bright', 'dark', 'old', 'shiny', 'distant'];
const COLOURS = ['red', 'blue', 'green', 'white', 'black', 'grey', 'brown', 'yellow'];
const SETTINGS = ['on a sunny street', 'in a grassy field', 'near the water', 'against a cloudy sky', 'inside a crowded room', 'beside a wooden fence', 'at the edge of a forest', 'under a bridge at night'];
const EXTRAS = ['', ', photographed from the side', ', seen from far away in a low resolution image', ', with a few people watching it and a tree in the background'];

/** A synthetic set: `classes` × `perClass` distinct captions of varied length. */
function syntheticSet(classes: number, perClass: number): ClassCaptions {
  return Array.from({ length: classes }, (_, c) =>
    Array.from({ length: perClass }, (_, k) => {
      const noun = NOUNS[c % NOUNS.length];
      const adj = ADJECTIVES[k % ADJECTIVES.length];
      const colour = COLOURS[Math.floor(k / ADJECTIVES.length) % COLOURS.length];
      return `A ${adj} ${colour} ${noun} ${SETTINGS[(k * 3 + c) % SETTINGS.length]}${EXTRAS[(k + c) % EXTRAS.length]}.`;
    }),
  );
}

export async function benchCaptions(args: string[], print: (row: object) => void): Promise<void> {
  const unknown = args.filter((a) => a !== '--quick');
  if (unknown.length) throw new Error(`bench captions: unknown argument(s) ${unknown.join(' ')} (options: --quick)`);
  const quick = args.includes('--quick');
  if (!existsSync(DEV_VOCAB)) {
    print({ bench: 'captions', skipped: `vocab missing at ${DEV_VOCAB}` });
    return;
  }
  const batches = quick ? [16] : [8, 16, 32];
  const tokenizer = WordPieceTokenizer.fromVocab(await readFile(DEV_VOCAB, 'utf8'), DEV_VOCAB);

  // The source as `edgetrain captions --test-model` makes it, with a batch size that runs every chunk below whole.
  const source = await encoderFromFlags({ 'test-model': true, pooling: POOLING, 'batch-size': String(Math.max(...batches, PRECOMPUTE_BATCH)) }, () => {});
  let local: LocalCoordinator | undefined;
  try {
    // 1. Start-up: building the ONNX bytes, then open() (which builds them again and creates the session).
    let t0 = performance.now();
    const modelBytes = buildRandomBert({ seed: 0, layers: LAYERS, hidden: HIDDEN, heads: HEADS, vocab: tokenizer.size }).byteLength;
    const buildMs = ms(t0);
    t0 = performance.now();
    const encoder = await source.open();
    const openMs = ms(t0);
    const dim = encoder.dim;
    print({
      bench: 'captions',
      phase: 'startup',
      encoder: encoder.id,
      layers: LAYERS,
      hidden: HIDDEN,
      heads: HEADS,
      vocab: tokenizer.size,
      dim,
      modelBytes,
      modelMiB: round(modelBytes / 2 ** 20, 1),
      buildMs,
      openMs,
      sessionMs: round(openMs - buildMs, 1),
    });

    // 2. Encode throughput by batch size.
    const texts = cifarTexts(quick ? CIFAR10_CAPTIONS.flat().length : TARGET_CAPTIONS);
    const tokens = texts.map((t) => tokenizer.encode(t).length);
    const meanTokens = round(tokens.reduce((a, b) => a + b, 0) / texts.length, 1);
    for (const batch of batches) {
      let padded = 0;
      for (let i = 0; i < texts.length; i += batch) {
        const chunk = tokens.slice(i, i + batch);
        padded += chunk.length * Math.max(...chunk);
      }
      await encoder.encode(texts.slice(0, batch)); // warm-up: one batch of this shape
      const times: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        const t = performance.now();
        await encodeInBatches(encoder, texts, batch);
        times.push(performance.now() - t);
      }
      const medianMs = median(times);
      print({
        bench: 'captions',
        phase: 'encode',
        encoder: encoder.id,
        pooling: POOLING,
        batchSize: batch,
        rows: texts.length,
        dim,
        runs: RUNS,
        medianMs: round(medianMs, 1),
        minMs: round(Math.min(...times), 1),
        maxMs: round(Math.max(...times), 1),
        captionsPerSecond: round((texts.length * 1000) / medianMs, 1),
        msPerCaption: round(medianMs / texts.length),
        meanTokensPerCaption: meanTokens,
        meanPaddedTokensPerCaption: round(padded / texts.length, 1),
      });
    }

    // 3. End to end through the local cluster (in memory): the API stores each set in KV.
    t0 = performance.now();
    local = await startCoordinator();
    const coordinatorStartMs = ms(t0);
    const store = new ApiClient(local.url, { token: local.token }).captionStore();
    const kv = await local.mf.getKVNamespace('KV');
    // The opened encoder, run in batches of the CLI's default size; same id, so the same content address.
    const precomputeEncoder: CaptionEncoder = { id: encoder.id, dim, encode: (t) => encodeInBatches(encoder, t, PRECOMPUTE_BATCH) };
    const precompute = async (name: string, classes: ClassCaptions, expectHit: boolean) => {
      const t = performance.now();
      const report: PrecomputeReport = await precomputeCaptionSet(store, precomputeEncoder, name, classes);
      const wallMs = ms(t);
      if (report.hit !== expectHit) throw new Error(`caption set ${name}: expected a ${expectHit ? 'hit' : 'miss'}, got a ${report.hit ? 'hit' : 'miss'}`);
      const { entry } = report;
      const value = await kv.get(entry.key, 'arrayBuffer');
      if (!value) throw new Error(`caption set ${name}: ${entry.key} is not in KV after the precompute`);
      const rows = entry.classes * entry.perClass;
      return {
        bench: 'captions',
        phase: 'precompute',
        set: name,
        result: report.hit ? 'hit' : 'miss',
        encoder: entry.encoder,
        hash: entry.key.slice(CAPTIONS_PREFIX.length, CAPTIONS_PREFIX.length + 12),
        classes: entry.classes,
        perClass: entry.perClass,
        rows,
        dim: entry.dim,
        batchSize: PRECOMPUTE_BATCH,
        wallMs,
        ...(report.hit ? {} : { captionsPerSecond: round((rows * 1000) / wallMs, 1) }),
        kvBytes: entry.bytes,
        kvValueBytes: value.byteLength,
        kvBytesPerCaption: round(entry.bytes / rows, 1),
      };
    };
    const miss = await precompute(CIFAR10_CAPTION_SET_NAME, CIFAR10_CAPTIONS, false);
    print({ ...miss, coordinatorStartMs });
    print(await precompute(CIFAR10_CAPTION_SET_NAME, CIFAR10_CAPTIONS, true));
    print(await precompute('synthetic-10x64', syntheticSet(10, 64), false));
  } finally {
    await source.release();
    await local?.dispose();
  }
}
