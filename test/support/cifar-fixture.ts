// Synthetic CIFAR-10 batches in the official binary layout (the real archive: ./prerequisites).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CIFAR10_CLASSES, RECORD_BYTES } from '../../shared/data/cifar.js';

/** Record g (global index) has label g % 10 and pixel bytes that differ per record, channel and position. */
export function pixel(g: number, channel: number, pos: number): number {
  return (g * 13 + channel * 101 + pos) & 255;
}

export function makeBatch(first: number, count: number): Uint8Array {
  const bytes = new Uint8Array(count * RECORD_BYTES);
  for (let r = 0; r < count; r++) {
    const g = first + r;
    bytes[r * RECORD_BYTES] = g % 10;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 1024; p++) bytes[r * RECORD_BYTES + 1 + c * 1024 + p] = pixel(g, c, p);
    }
  }
  return bytes;
}

export const PER_BATCH = 20;
export const BATCH_NAMES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];

/** The six batch files (perBatch records each) and batches.meta.txt, by base name. */
export function fixtureFiles(perBatch = PER_BATCH): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  BATCH_NAMES.forEach((name, i) => files.set(name, makeBatch(i * perBatch, perBatch)));
  files.set('test_batch.bin', makeBatch(1000, perBatch));
  files.set('batches.meta.txt', new TextEncoder().encode(`${CIFAR10_CLASSES.join('\n')}\n\n`));
  return files;
}

export function writeFolder(dir: string, files: Map<string, Uint8Array>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of files) writeFileSync(path.join(dir, name), data);
}

/** Byte arrays joined end to end. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
