// The simulator's communication modes (sim/communication.ts): frame bytes and sync rounds of seed-cnn
// on CIFAR-10 at batch 128 in leases of 32, and smaller frames or fewer syncs giving shorter steps.
import { describe, expect, it } from 'vitest';
import { COMMUNICATION_MODES, SEED_CIFAR_RUN, layoutOf, modeStepMs, modeTraffic, type CommunicationMode } from '../../sim/communication';
import { simulate, type Costs, type RunShape } from '../../sim/model';
import { INT8_BLOCK, topKOf } from '../../shared/wire/codec';
import { DEFAULT_COMPRESSION, gradientCodec, paramsCodec, type CompressionConfig } from '../../shared/training/communication';
import { encodeGradientAs, encodeParams } from '../../shared/wire';

const layout = layoutOf(SEED_CIFAR_RUN.model);
const n = layout.segments.reduce((a, b) => a + b, 0);
const modeNamed = (name: string): CommunicationMode => COMMUNICATION_MODES.find((m) => m.name === name)!;
const traffic = (name: string) => modeTraffic(modeNamed(name), SEED_CIFAR_RUN, layout);
/** The byte lengths of real frames a worker would send and fetch with `compression`. */
function realFrames(compression: CompressionConfig): { gradient: number; params: number } {
  const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const buffers = new Float32Array(layout.bufferCount);
  const answer = { leaseId: crypto.randomUUID(), version: 3, step: 3, shard: 1, count: 32, loss: 2.1, correct: 4, grads: values, stats: buffers };
  return {
    gradient: encodeGradientAs(answer, { codec: gradientCodec(compression), segments: layout.segments }).byteLength,
    params: encodeParams({ version: 3, params: values, buffers }, { codec: paramsCodec(compression), segments: layout.segments }).byteLength,
  };
}
/** A fp32 frame's bytes beyond its values (header, lease id, scalars, checksum). */
const FRAME_OVERHEAD = realFrames(DEFAULT_COMPRESSION).gradient - 4 * n - 4 * layout.bufferCount;

describe('communication modes: bytes and rounds', () => {
  it('cuts 50,000 images at batch 128 into 390 steps of 4 shards; DiLoCo syncs ceil(390 / H) times an epoch', () => {
    expect(n).toBe(658_753);
    for (const m of COMMUNICATION_MODES) expect(modeTraffic(m, SEED_CIFAR_RUN, layout)).toMatchObject({ shards: 4, stepsPerEpoch: 390 });
    expect(traffic('fp32').syncRoundsPerEpoch).toBe(390);
    expect(traffic('int8+ef').syncRoundsPerEpoch).toBe(390);
    expect(traffic('diloco8-fp32').syncRoundsPerEpoch).toBe(Math.ceil(390 / 8));
    expect(traffic('diloco32-int8+ef').syncRoundsPerEpoch).toBe(Math.ceil(390 / 32));
  });

  it('sizes frames as the real frames are: fp32 4 bytes a value, int8 a quarter of it plus one scale per block, top-k 8 bytes per kept value', () => {
    for (const name of ['fp32', 'fp16', 'int8+ef', 'topk1%+ef/int8-params']) {
      const real = realFrames(modeNamed(name).compression);
      expect([traffic(name).gradientFrameBytes, traffic(name).paramsFrameBytes], name).toEqual([real.gradient, real.params]);
    }
    expect(FRAME_OVERHEAD).toBeLessThan(100);
    const scales = layout.segments.reduce((a, s) => a + Math.ceil(s / INT8_BLOCK), 0);
    const int8 = traffic('int8+ef');
    expect(int8.gradientFrameBytes - (Math.ceil(n / 4) * 4 + 4 * scales)).toBeLessThan(200);
    expect(int8.gradientFrameBytes / traffic('fp32').gradientFrameBytes).toBeGreaterThan(0.25);
    expect(int8.gradientFrameBytes / traffic('fp32').gradientFrameBytes).toBeLessThan(0.26);
    const topk = traffic('topk1%+ef/int8-params');
    expect(topk.gradientFrameBytes - 8 * layout.segments.reduce((a, s) => a + topKOf(s, 0.01), 0)).toBeLessThan(200);
    expect(topk.paramsFrameBytes).toBe(int8.paramsFrameBytes);
  });

  it('counts shards × gradient frame up and workers × parameter frame down per sync, spread over the epoch\'s steps', () => {
    const t = traffic('diloco8-fp32');
    expect(t.upBytesPerSync).toBe(4 * t.gradientFrameBytes);
    expect(t.downBytesPerSync).toBe(4 * t.paramsFrameBytes);
    expect(t.bytesPerEpoch).toBe(49 * (t.upBytesPerSync + t.downBytesPerSync));
    expect(t.bytesPerStep).toBeCloseTo(t.bytesPerEpoch / 390, 6);
    expect(traffic('fp32').bytesPerStep).toBe(4 * (traffic('fp32').gradientFrameBytes + traffic('fp32').paramsFrameBytes));
  });
});

describe('communication modes: step time', () => {
  const COSTS: Costs = {
    computeMs: 100,
    computeCv: 0,
    rpcMs: 10,
    workerMBps: 100,
    objectInMsPerMB: 2,
    objectOutMsPerMB: 1,
    applyMs: 5,
    commitFullMs: 40,
    commitLogMs: 4,
    publishMs: 3,
    versionReadMs: 7,
    frameMB: 4 * n / 1e6,
    oneThread: false,
  };
  const shape: RunShape = { design: 'new', workers: 4, shards: 4, aggregators: 0, steps: 4, seed: 1 };
  const stepMs = (name: string, costs = COSTS) => modeStepMs(costs, modeNamed(name), traffic(name), shape);

  it('leaves the fp32 mode\'s step as the plain model\'s, but for the frames\' overhead each way', () => {
    const fp32 = traffic('fp32');
    const overheadMs = ((fp32.gradientFrameBytes - 4 * n + fp32.paramsFrameBytes - 4 * n) / 1e6 / COSTS.workerMBps) * 1000;
    expect(stepMs('fp32') - simulate(COSTS, shape).stepMs).toBeCloseTo(overheadMs, 9);
  });

  it('shortens a step by the transfer time the smaller frames save on the worker\'s link', () => {
    const wireMs = (bytes: number) => (bytes / 1e6 / COSTS.workerMBps) * 1000;
    const saved = (name: string) => wireMs(traffic('fp32').gradientFrameBytes - traffic(name).gradientFrameBytes) + wireMs(traffic('fp32').paramsFrameBytes - traffic(name).paramsFrameBytes);
    for (const name of ['fp16', 'int8+ef', 'topk1%+ef/int8-params']) expect(stepMs('fp32') - stepMs(name)).toBeCloseTo(saved(name), 6);
    expect(stepMs('topk1%+ef/int8-params')).toBeLessThan(stepMs('int8+ef'));
    // With an unlimited link the codecs save nothing (the objects' work is per parameter).
    const fast = { ...COSTS, workerMBps: 1e12 };
    expect(stepMs('int8+ef', fast)).toBeCloseTo(stepMs('fp32', fast), 6);
  });

  it('charges DiLoCo one sync per H steps of compute: the step is compute plus the sync overhead ÷ H', () => {
    const overhead = stepMs('fp32') - COSTS.computeMs;
    expect(stepMs('diloco8-fp32')).toBeCloseTo(COSTS.computeMs + overhead / 8, 6);
    expect(stepMs('diloco32-int8+ef')).toBeLessThan(stepMs('diloco32-fp32'));
  });
});
