// The scaling simulator's engine and model (sim/) on cases whose answers are known by hand.
import { describe, expect, it } from 'vitest';
import { Server, Simulation } from '../../sim/engine';
import { bestAggregators, simulate, type Costs } from '../../sim/model';

/** Costs where every figure is a round number, one thread per object (Cloudflare-like), no jitter. */
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
  frameMB: 2,
  oneThread: false,
};

describe('discrete-event engine', () => {
  it('serves simultaneous requests one at a time, first come first served', () => {
    const sim = new Simulation();
    const server = new Server(sim, 'object');
    const done: number[] = [];
    for (let k = 0; k < 4; k++) sim.after(0, () => server.serve(25, () => done.push(sim.now)));
    sim.run();
    expect(done).toEqual([25, 50, 75, 100]);
    expect(server.busyMs).toBe(100);
  });

  it('runs events in time order, ties in the order they were scheduled', () => {
    const sim = new Simulation();
    const order: string[] = [];
    sim.after(5, () => order.push('b'));
    sim.after(1, () => order.push('a'));
    sim.after(5, () => order.push('c'));
    sim.run();
    expect(order).toEqual(['a', 'b', 'c']);
  });
});

describe('the run model', () => {
  it('makes one worker\'s step the sum of its path, in each design', () => {
    const f = COSTS.frameMB;
    const wire = (f / COSTS.workerMBps) * 1000; // 20 ms per frame on the worker's link
    // lease (rpc) → parameters → compute → upload (half an rpc + the frame) → sum → apply (+ commit, publish)
    const old = simulate(COSTS, { design: 'old', workers: 1, shards: 1, aggregators: 0, steps: 4, seed: 1 });
    expect(old.stepMs).toBeCloseTo(10 + (f * 1 + 10 + wire) + 100 + (5 + wire) + f * 2 + (5 + 40), 6);
    const fresh = simulate(COSTS, { design: 'new', workers: 1, shards: 1, aggregators: 0, steps: 4, seed: 1 });
    expect(fresh.stepMs).toBeCloseTo(10 + (7 + wire) + 100 + (5 + wire) + f * 2 + (5 + 4 + 3), 6);
  });

  it('grows the old coordinator\'s egress with the workers; the new one writes each version twice (cache, R2), whatever their number', () => {
    const out = (design: 'old' | 'new', n: number) => simulate(COSTS, { design, workers: n, shards: n, aggregators: 0, steps: 3, seed: 1 }).coordinatorOutMB;
    expect([1, 4, 16].map((n) => out('old', n))).toEqual([2, 8, 32]);
    expect([1, 4, 16].map((n) => out('new', n))).toEqual([4, 4, 4]);
  });

  it('takes partials, not frames, into the coordinator with aggregators: G partials of twice a frame', () => {
    const p = simulate(COSTS, { design: 'new', workers: 16, shards: 16, aggregators: 4, steps: 3, seed: 1 });
    expect(p.coordinatorInMB).toBe(4 * 2 * COSTS.frameMB);
    expect(p.aggregatorBusyMs).toBe(4 * COSTS.frameMB * COSTS.objectInMsPerMB);
  });

  it('chooses √(N/2) aggregators, at least one and at most one per shard', () => {
    expect([1, 2, 8, 32, 256, 1024].map(bestAggregators)).toEqual([1, 1, 2, 4, 11, 23]);
  });
});
