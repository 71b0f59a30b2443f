// A BERT model for caption embeddings, in the Hugging Face folder layout: `onnx/model.onnx` (an ONNX
// export, e.g. Optimum's of bert-base-uncased) and `tokenizer.json` or `vocab.txt`. From a folder, or
// fetched by name from the Hugging Face hub into a cache (needs internet; not exercised here).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256Hex } from '../shared/data/blocks';
import { WordPieceTokenizer } from '../shared/text/wordpiece';
import { downloadFile } from './dataset';
import { UsageError } from './args';

export interface BertFolder {
  readonly dir: string;
  readonly model: Uint8Array;
  readonly tokenizer: WordPieceTokenizer;
  /** Content identity: hashes of the model and tokenizer files. */
  readonly id: string;
}

const MODEL_PATHS = ['onnx/model.onnx', 'model.onnx'];
const TOKENIZER_PATHS = ['tokenizer.json', 'vocab.txt'];

export async function loadBertFolder(dir: string): Promise<BertFolder> {
  if (!existsSync(dir)) throw new UsageError(`BERT model folder ${dir} does not exist`);
  const modelPath = MODEL_PATHS.map((p) => path.join(dir, p)).find(existsSync);
  if (!modelPath) throw new UsageError(`${dir}: no ONNX model (looked for ${MODEL_PATHS.join(', ')}); export one, e.g. \`optimum-cli export onnx --model bert-base-uncased ${dir}\``);
  const tokenizerPath = TOKENIZER_PATHS.map((p) => path.join(dir, p)).find(existsSync);
  if (!tokenizerPath) throw new UsageError(`${dir}: no tokenizer (looked for ${TOKENIZER_PATHS.join(', ')})`);
  const tokenizerText = await readFile(tokenizerPath, 'utf8');
  let tokenizer: WordPieceTokenizer;
  if (tokenizerPath.endsWith('.json')) {
    let json: unknown;
    try {
      json = JSON.parse(tokenizerText);
    } catch (e) {
      throw new UsageError(`${tokenizerPath}: not JSON (${(e as Error).message})`);
    }
    tokenizer = WordPieceTokenizer.fromTokenizerJson(json, tokenizerPath);
  } else tokenizer = WordPieceTokenizer.fromVocab(tokenizerText, tokenizerPath);
  const model = new Uint8Array(await readFile(modelPath));
  const id = `bert-onnx:${(await sha256Hex(model)).slice(0, 16)}:${(await sha256Hex(tokenizerText)).slice(0, 8)}`;
  return { dir, model, tokenizer, id };
}

/**
 * Downloads a hub model's ONNX export and tokenizer into `cacheDir/<name>` (once) and returns that
 * folder. `baseUrl` is for tests against a local server.
 */
export async function fetchHubModel(name: string, cacheDir: string, log: (s: string) => void, baseUrl = 'https://huggingface.co'): Promise<string> {
  if (!/^\w[\w.-]*(\/\w[\w.-]*)?$/.test(name)) throw new UsageError(`hub model '${name}' is not a model name like 'bert-base-uncased' or 'org/model'`);
  const dir = path.join(cacheDir, name);
  const url = (file: string) => `${baseUrl}/${name}/resolve/main/${file}`;
  const modelPath = path.join(dir, 'onnx', 'model.onnx');
  if (!existsSync(modelPath)) await downloadFile(url('onnx/model.onnx'), modelPath, undefined, log);
  if (!TOKENIZER_PATHS.some((p) => existsSync(path.join(dir, p)))) {
    try {
      await downloadFile(url('tokenizer.json'), path.join(dir, 'tokenizer.json'), undefined, log);
    } catch {
      await downloadFile(url('vocab.txt'), path.join(dir, 'vocab.txt'), undefined, log);
    }
  }
  return dir;
}
