// A small discrete-event engine: events ordered by time (ties in scheduling order), and FIFO
// single-server resources for anything that does one thing at a time (a Durable Object's thread,
// a network link). Deterministic: the same schedule gives the same trace.
import { mulberry32 } from '../shared/data/shuffle';

type Event = { readonly at: number; readonly seq: number; readonly run: () => void };

export class Simulation {
  private readonly heap: Event[] = [];
  private seq = 0;
  now = 0;

  /** Runs `run` at `now + delay` (delay ≥ 0). */
  after(delay: number, run: () => void): void {
    if (!(delay >= 0)) throw new RangeError(`event delay ${delay} must be ≥ 0`);
    this.push({ at: this.now + delay, seq: this.seq++, run });
  }

  /** Processes events until none are left or `until` returns true. */
  run(until: () => boolean = () => false): void {
    while (this.heap.length && !until()) {
      const e = this.pop();
      this.now = e.at;
      e.run();
    }
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Event {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

const before = (a: Event, b: Event) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** Something that serves one request at a time, first come first served; it records its busy time. */
export class Server {
  private freeAt = 0;
  busyMs = 0;

  constructor(
    private readonly sim: Simulation,
    readonly name: string,
  ) {}

  /** Serves a request needing `serviceMs` once the server is free; `done` runs when it is served. */
  serve(serviceMs: number, done: () => void): void {
    const start = Math.max(this.sim.now, this.freeAt);
    this.freeAt = start + serviceMs;
    this.busyMs += serviceMs;
    this.sim.after(this.freeAt - this.sim.now, done);
  }
}

/** Seeded standard normal draws (Box–Muller), for compute-time jitter. */
export function normalSampler(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}
