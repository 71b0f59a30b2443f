#!/usr/bin/env node
// Classifies CIFAR-10 images with a model exported by edgetrain (`edgetrain export RUN_ID`, or
// GET /v1/runs/:id/model.onnx), using onnxruntime alone: nothing here imports edgetrain's code.
//
//   node examples/classify.mjs model.onnx test_batch.bin 7       # one image: its class and top-3
//   node examples/classify.mjs model.onnx test_batch.bin --all   # accuracy over the whole file
//
// test_batch.bin is the official CIFAR-10 binary file (tar xzf cifar-10-binary.tar.gz
// cifar-10-batches-bin/test_batch.bin): records of 1 label byte + 3,072 pixel bytes (R, G, B planes of
// 32 × 32). The model takes those bytes as float32 `pixels` [1, 3, 32, 32] and normalises them itself;
// it answers `probabilities` [1, 10] (and `logits`). A model of the concat head also needs a `caption`
// input, which this example does not provide.
import { readFile } from 'node:fs/promises';

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const RECORD = 1 + 3 * 32 * 32;

// onnxruntime-node when installed (native), else onnxruntime-web (WASM).
const ort = await import('onnxruntime-node').catch(() => import('onnxruntime-web'));

const [modelPath, batchPath, which = '0'] = process.argv.slice(2);
if (!modelPath || !batchPath) {
  console.error('usage: node examples/classify.mjs MODEL.onnx test_batch.bin [INDEX | --all]');
  process.exit(2);
}
const session = await ort.InferenceSession.create(new Uint8Array(await readFile(modelPath)));
const records = await readFile(batchPath);
const count = Math.floor(records.length / RECORD);

async function classify(i) {
  const record = records.subarray(i * RECORD, (i + 1) * RECORD);
  const pixels = Float32Array.from(record.subarray(1));
  const { probabilities } = await session.run({ pixels: new ort.Tensor('float32', pixels, [1, 3, 32, 32]) });
  const p = Array.from(probabilities.data);
  return { label: record[0], predicted: p.indexOf(Math.max(...p)), p };
}

if (which === '--all') {
  let correct = 0;
  for (let i = 0; i < count; i++) if ((await classify(i)).predicted === records[i * RECORD]) correct++;
  console.log(`accuracy ${(correct / count).toFixed(4)} (${correct} of ${count} images)`);
} else {
  const i = Number(which);
  if (!Number.isInteger(i) || i < 0 || i >= count) {
    console.error(`image index ${which} is not in 0..${count - 1}`);
    process.exit(2);
  }
  const { label, predicted, p } = await classify(i);
  const top = p.map((v, k) => [v, k]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  console.log(`image ${i}: predicted ${CLASSES[predicted]} (true: ${CLASSES[label]}); top 3: ${top.map(([v, k]) => `${CLASSES[k]} ${(100 * v).toFixed(1)}%`).join(', ')}`);
}
