// `npm run bench -- compression [--repetitions N] [--window-ms MS]`: encode and decode throughput of
// the wire codecs (fp32 frame payload for reference, fp16, int8, top-k 1%) and of error feedback
// (residual add + encode + decode), on seed-cnn/align's real parameter layout (its tensors are the
// codecs' segments), in Node and inside workerd (Miniflare), both V8 running the same TypeScript (no
// WASM). MB/s counts MB (10^6 bytes) of fp32 input per second. One JSON object per line.
import { Miniflare } from 'miniflare';
import { COMPATIBILITY_DATE, bundleModules, bundleWorker } from '../cli/cluster/bundle';
import { trainingLayout } from '../shared/models/compile';
import { flatLayout } from '../shared/models/params';
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from '../shared/models/presets';
import { COMPRESSION_CASES, timeCompression, type CaseTiming, type TimingRequest } from './compression-kernel';

const MODEL: ModelConfig = { ...DEFAULT_MODEL_CONFIG, preset: 'seed-cnn', head: 'align' };

type Runtime = 'node' | 'workerd';

async function timeInWorkerd(request: TimingRequest): Promise<CaseTiming[]> {
  const mf = new Miniflare({ ...bundleModules(await bundleWorker('bench/compression-worker.ts', 'compression-worker')), compatibilityDate: COMPATIBILITY_DATE });
  try {
    await mf.ready;
    const res = await mf.dispatchFetch('http://bench/', { method: 'POST', body: JSON.stringify(request) });
    if (!res.ok) throw new Error(`compression worker: HTTP ${res.status}: ${await res.text()}`);
    return (await res.json()) as CaseTiming[];
  } finally {
    await mf.dispose();
  }
}

const mbPerSecond = (bytes: number, ms: number) => +(bytes / 1e6 / (ms / 1000)).toFixed(1);

export async function benchCompression(args: string[], print: (o: object) => void): Promise<void> {
  const flag = (name: string, fallback: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
  const segments = flatLayout(trainingLayout(MODEL).params).slices.map((s) => s.size);
  const request: TimingRequest = { segments, repetitions: flag('--repetitions', 7), windowMs: flag('--window-ms', 100) };
  const params = segments.reduce((a, b) => a + b, 0);
  const inputBytes = 4 * params;
  const runs: [Runtime, () => Promise<CaseTiming[]>][] = [
    ['node', async () => timeCompression(request)],
    ['workerd', () => timeInWorkerd(request)],
  ];
  for (const [runtime, run] of runs) {
    const timings = await run();
    timings.forEach((t, i) => {
      const c = COMPRESSION_CASES[i];
      print({
        bench: 'compression',
        runtime,
        model: `${MODEL.preset}/${MODEL.head}`,
        params,
        tensors: segments.length,
        codec: c.label,
        errorFeedback: c.errorFeedback,
        ...(c.errorFeedback ? { encodeIs: 'residual add + encode + decode (ErrorFeedback.encode)' } : {}),
        payloadBytes: t.payloadBytes,
        fp32OverPayload: +(inputBytes / t.payloadBytes).toFixed(2),
        encodeMs: +t.encodeMs.toFixed(3),
        encodeMBps: mbPerSecond(inputBytes, t.encodeMs),
        ...(t.decodeMs === undefined ? {} : { decodeMs: +t.decodeMs.toFixed(3), decodeMBps: mbPerSecond(inputBytes, t.decodeMs) }),
        repetitions: request.repetitions,
      });
    });
  }
}
