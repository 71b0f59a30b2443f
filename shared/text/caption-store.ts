// Class caption sets, embedded once and stored content-addressed: the key is the SHA-256 of the encoder
// id and the exact texts, so a stored value can never be the wrong one for a (encoder, set) pair, and
// eventual consistency can only ever serve a right value or none.
import { sha256Hex } from '../data/blocks';
import { decodeEmbeddings, embeddingsBytes, type EmbeddingSet } from '../wire/embeddings';
import { checkCaptionText } from './caption-file';
import type { CaptionEncoder } from './encoder';

export const CAPTIONS_PREFIX = 'captions/';

/** What the manifest lists for each stored set (also the KV metadata of its value). */
export interface CaptionSetEntry {
  readonly key: string;
  readonly name: string;
  readonly encoder: string;
  readonly classes: number;
  readonly perClass: number;
  readonly dim: number;
  readonly bytes: number;
}

/** A Workers KV value is at most 25 MiB (https://developers.cloudflare.com/kv/platform/limits/); a set is one value. */
export const KV_VALUE_LIMIT = 25 * 1024 * 1024;

/** Why `rows` vectors of `dim` from encoder `encoderId` cannot be stored as one set, or undefined when they can. */
export function captionSetSizeProblem(encoderId: string, rows: number, dim: number): string | undefined {
  const bytes = embeddingsBytes(encoderId, rows, dim);
  if (bytes <= KV_VALUE_LIMIT) return undefined;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${rows} captions × ${dim} float32 make a ${mib(bytes)} value (${bytes} bytes), over Workers KV's ${mib(KV_VALUE_LIMIT)} value limit (${KV_VALUE_LIMIT} bytes)`;
}

/** Per class, its captions: classes × perClass texts. */
export type ClassCaptions = readonly (readonly string[])[];

export async function captionSetKey(encoderId: string, classes: ClassCaptions): Promise<string> {
  return `${CAPTIONS_PREFIX}${await sha256Hex(JSON.stringify([encoderId, classes]))}`;
}

/** Every problem with a caption set, each naming class and caption. */
export function captionSetErrors(classes: unknown): string[] {
  if (!Array.isArray(classes) || classes.length < 2) return ['classes: must list the captions of at least 2 classes'];
  const errors: string[] = [];
  const perClass = Array.isArray(classes[0]) ? classes[0].length : 0;
  classes.forEach((texts, c) => {
    if (!Array.isArray(texts) || texts.length === 0) return void errors.push(`classes[${c}]: must be a non-empty list of captions`);
    if (texts.length !== perClass) errors.push(`classes[${c}]: ${texts.length} captions; every class needs the same number (${perClass})`);
    texts.forEach((t, k) => {
      if (typeof t !== 'string') return void errors.push(`classes[${c}][${k}]: not a string`);
      try {
        checkCaptionText(t, `classes[${c}][${k}]`);
      } catch (e) {
        errors.push((e as Error).message);
      }
    });
  });
  return errors;
}

/** Where sets are kept: KV on Workers, the API from the CLI. */
export interface CaptionStore {
  /** The stored set's entry, or undefined. */
  entry(key: string): Promise<CaptionSetEntry | undefined>;
  /** Writes one complete set (never part of one). */
  put(entry: CaptionSetEntry, classes: ClassCaptions, vectors: Float32Array): Promise<void>;
}

export interface PrecomputeReport {
  readonly entry: CaptionSetEntry;
  /** True when the set was already stored: nothing was encoded or written. */
  readonly hit: boolean;
}

/** An encoder known by its id before it is loaded, so a stored set costs no model load. */
export interface EncoderSource {
  readonly id: string;
  open(): Promise<CaptionEncoder>;
}

/** Embeds a set once: a stored set is a hit and costs no encoding; otherwise one complete value is written. */
export async function precomputeCaptionSet(store: CaptionStore, source: CaptionEncoder | EncoderSource, name: string, classes: ClassCaptions): Promise<PrecomputeReport> {
  const errors = captionSetErrors(classes);
  if (errors.length) throw new Error(`caption set '${name}':\n  ${errors.join('\n  ')}`);
  const key = await captionSetKey(source.id, classes);
  const stored = await store.entry(key);
  if (stored) return { entry: stored, hit: true };
  const encoder = 'open' in source ? await source.open() : source;
  if (encoder.id !== source.id) throw new Error(`encoder ${encoder.id} opened for source ${source.id}`);
  const perClass = classes[0].length;
  const rows = classes.length * perClass;
  const entry: CaptionSetEntry = { key, name, encoder: encoder.id, classes: classes.length, perClass, dim: encoder.dim, bytes: embeddingsBytes(encoder.id, rows, encoder.dim) };
  const vectors = await encoder.encode(classes.flat());
  const bad = vectors.findIndex((v) => !Number.isFinite(v));
  if (vectors.length !== rows * encoder.dim || bad >= 0) throw new Error(`encoder ${encoder.id} gave ${vectors.length} values${bad >= 0 ? ` (value ${bad} is ${vectors[bad]})` : ''} for ${rows} captions × ${encoder.dim}; nothing was stored`);
  await store.put(entry, classes, vectors);
  return { entry, hit: false };
}

/** Reads a stored set back as the heads' caption input, checking it fits the model. */
export function captionsForModel(bytes: Uint8Array, model: { classes: number; captionsPerClass: number }, dim: number, key: string): Float32Array {
  const set = decodeEmbeddings(bytes);
  if (set.dim !== dim) throw new Error(`caption set ${key}: ${set.dim}-d vectors; the heads take ${dim}`);
  return selectCaptions(set, model.classes, model.captionsPerClass);
}

/** The first `perClass` captions of each class, as the heads read them: [classes, perClass, dim]. */
export function selectCaptions(set: EmbeddingSet, classes: number, perClass: number): Float32Array {
  const stored = set.rows / classes;
  if (!Number.isInteger(stored) || stored < perClass) throw new Error(`caption set by ${set.encoder}: ${set.rows} vectors cannot give ${classes} classes × ${perClass} captions`);
  const out = new Float32Array(classes * perClass * set.dim);
  for (let c = 0; c < classes; c++) out.set(set.data.subarray(c * stored * set.dim, (c * stored + perClass) * set.dim), c * perClass * set.dim);
  return out;
}
