// `edgetrain captions`: embed a class caption set once with a BERT model and store it in KV through the
// API (the local cluster's state, or a deployed URL). A set already stored is a hit: nothing is encoded.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BertEncoder } from '../shared/text/bert-encoder';
import { RANDOM_BERT_ID, buildRandomBert } from '../shared/text/bert-graph';
import { sha256Hex, type Split } from '../shared/data/blocks';
import { CAPTIONS_PREFIX, captionSetErrors, precomputeCaptionSet, type ClassCaptions, type EncoderSource, type PrecomputeReport } from '../shared/text/caption-store';
import { parseCaptionFile } from '../shared/text/caption-file';
import { CIFAR10_CAPTIONS, CIFAR10_CAPTION_SET_NAME } from '../shared/text/cifar10-captions';
import { captionsInOrder, precomputeImageCaptions, type ImageCaptionReport } from '../shared/text/image-captions';
import type { Pooling } from '../shared/text/encoder';
import { WordPieceTokenizer } from '../shared/text/wordpiece';
import { ApiClient } from '../workers/gradient/client';
import { loadOrt } from '../workers/ort/node';
import { choiceFlag, numberFlag, parseFlags, UsageError } from './args';
import { fetchHubModel, loadBertFolder } from './bert-model';
import type { Command } from './command';
import { connect } from './connect';
import { EXIT } from './errors';

/** The bert-base-uncased vocabulary shipped with the development data (for the test model). */
export const DEV_VOCAB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/data/bert-base-uncased/vocab.txt');

const FLAGS = {
  model: { type: 'string' },
  hub: { type: 'string' },
  'test-model': { type: 'boolean' },
  vocab: { type: 'string' },
  pooling: { type: 'string' },
  'max-length': { type: 'string' },
  'batch-size': { type: 'string' },
  classes: { type: 'string' },
  images: { type: 'string' },
  'test-images': { type: 'string' },
  dataset: { type: 'string' },
  name: { type: 'string' },
  url: { type: 'string' },
  state: { type: 'string' },
} as const;

export const CAPTIONS_USAGE = `edgetrain captions [options]   embed a class caption set once and store it in KV; prints its hash
  --model DIR            a BERT ONNX export in the Hugging Face layout (onnx/model.onnx + tokenizer.json or vocab.txt)
  --hub NAME             fetch NAME (e.g. an ONNX export of bert-base-uncased) from the Hugging Face hub (needs internet)
  --test-model           the random-weight BERT built here (no language knowledge; for tests), with --vocab
  --vocab FILE           vocab.txt for --test-model (default ../shared/data/bert-base-uncased/vocab.txt)
  --pooling cls|mean (cls)  --max-length N (512)  --batch-size N (16)
  --classes FILE         a JSON array of per-class caption lists (default: the project's CIFAR-10 captions)
  --images FILE --test-images FILE
                         per-image captions for the concat head instead: JSONL lines {"index": N, "text": "…"}, one
                         per train / test record of --dataset (default cifar10, which must be prepared)
  --name NAME            the set's name in the manifest (default ${CIFAR10_CAPTION_SET_NAME} or the file's base name)
  --url URL              a deployed edgetrain API (default: the local cluster's state, see --state)
  --state DIR            local cluster state (default .edgetrain/state)`;

async function classCaptions(file: string | undefined): Promise<{ name: string; classes: ClassCaptions }> {
  if (!file) return { name: CIFAR10_CAPTION_SET_NAME, classes: CIFAR10_CAPTIONS };
  if (!existsSync(file)) throw new UsageError(`--classes: ${file} does not exist`);
  let classes: unknown;
  try {
    classes = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message})`);
  }
  const errors = captionSetErrors(classes);
  if (errors.length) throw new UsageError(`${file}:\n  ${errors.join('\n  ')}`);
  return { name: path.basename(file).replace(/\.json$/, ''), classes: classes as ClassCaptions };
}

/** The encoder the flags choose (a folder, a hub model, or the random test model), opened only when needed. */
export async function encoderFromFlags(
  flags: { model?: string; hub?: string; 'test-model'?: boolean; vocab?: string; pooling?: string; 'max-length'?: string; 'batch-size'?: string },
  log: (s: string) => void,
): Promise<EncoderSource & { release(): Promise<void> }> {
  const chosen = [flags.model, flags.hub, flags['test-model']].filter(Boolean).length;
  if (chosen !== 1) throw new UsageError('captions: choose one encoder: --model DIR, --hub NAME or --test-model');
  const pooling = choiceFlag<Pooling>('pooling', flags.pooling, ['cls', 'mean'], 'cls');
  const options = { pooling, maxLength: numberFlag('max-length', flags['max-length'], 512), batchSize: numberFlag('batch-size', flags['batch-size'], 16) };
  let base: { id: string; model: () => Uint8Array; tokenizer: WordPieceTokenizer };
  if (flags['test-model']) {
    const vocabPath = flags.vocab ?? DEV_VOCAB;
    if (!existsSync(vocabPath)) throw new UsageError(`--vocab: ${vocabPath} does not exist (the test model needs a bert-base-uncased vocab.txt)`);
    const text = await readFile(vocabPath, 'utf8');
    const tokenizer = WordPieceTokenizer.fromVocab(text, vocabPath);
    base = { id: `${RANDOM_BERT_ID(0, 2)}:${(await sha256Hex(text)).slice(0, 8)}`, model: () => buildRandomBert({ seed: 0, layers: 2, vocab: tokenizer.size }), tokenizer };
  } else {
    const folder = await loadBertFolder(flags.model ?? (await fetchHubModel(flags.hub!, path.join('.edgetrain', 'models'), log)));
    base = { id: folder.id, model: () => folder.model, tokenizer: folder.tokenizer };
  }
  let opened: BertEncoder | undefined;
  return {
    id: `${base.id}:${pooling}`,
    open: async () => (opened = await BertEncoder.create(await loadOrt('web', 1), base.model(), base.tokenizer, { ...options, id: base.id })),
    release: async () => opened?.release(),
  };
}

export async function runCaptions(argv: string[], log: (s: string) => void = console.log): Promise<PrecomputeReport | ImageCaptionReport> {
  const flags = parseFlags(argv, FLAGS, 'captions');
  if (!!flags.images !== !!flags['test-images']) throw new UsageError('captions: --images and --test-images go together (the concat head needs a caption for every train and test image)');
  if (flags.images && flags.classes) throw new UsageError('captions: --classes (a class caption set) and --images (per-image captions) are different sets; give one');
  const set = flags.images ? undefined : await classCaptions(flags.classes);
  const source = await encoderFromFlags(flags, log);
  const { api, close } = await connect(flags);
  try {
    if (!set) return await imageCaptions(api, source, flags as Required<Pick<typeof flags, 'images' | 'test-images'>> & typeof flags, log);
    const report = await precomputeCaptionSet(api.captionStore(), source, flags.name ?? set.name, set.classes);
    const { entry } = report;
    log(`caption set ${entry.name} (${entry.encoder}, ${entry.classes} classes × ${entry.perClass} captions × ${entry.dim}): ${report.hit ? 'already stored, nothing encoded' : `stored (${entry.bytes} bytes)`}`);
    log(`hash ${entry.key.slice(CAPTIONS_PREFIX.length)} — pass it as "captions" in a run config or --captions`);
    return report;
  } finally {
    await source.release();
    await close();
  }
}

async function imageCaptions(api: ApiClient, source: EncoderSource, flags: { images: string; 'test-images': string; dataset?: string; name?: string }, log: (s: string) => void): Promise<ImageCaptionReport> {
  const dataset = flags.dataset ?? 'cifar10';
  const manifest = await api.manifest(dataset);
  if (!manifest) throw new UsageError(`captions: dataset '${dataset}' is not prepared here; run \`edgetrain prepare\` first (the caption files are checked against its record counts)`);
  const read = async (file: string, split: Split) => {
    if (!existsSync(file)) throw new UsageError(`${file} does not exist`);
    return captionsInOrder(parseCaptionFile(await readFile(file, 'utf8'), file, manifest[split].count), manifest[split].count, file);
  };
  const texts = { train: await read(flags.images, 'train'), test: await read(flags['test-images'], 'test') };
  const name = flags.name ?? path.basename(flags.images).replace(/\.jsonl?$/, '');
  const report = await precomputeImageCaptions(api.imageCaptionStore(), source, name, texts);
  log(`image caption set ${name} (${report.index.encoder}, ${report.index.train.count} train + ${report.index.test.count} test captions × ${report.index.dim}): ${report.chunksEncoded} chunk(s) encoded, ${report.chunksReused} already stored`);
  log(`hash ${report.hash} — pass it as "imageCaptions" in a run config (concat head)`);
  return report;
}

export const captionsCommand: Command = { usage: CAPTIONS_USAGE, run: async (argv, ctx) => (await runCaptions(argv, ctx.out.line), EXIT.ok) };
