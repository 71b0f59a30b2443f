// Seeded randomness and HTTP helpers for request fuzzing: the same seed gives the same requests, so a
// failure reproduces (FUZZ_SEED=<seed> npx vitest run …).

/** mulberry32: a tiny, fast 32-bit PRNG; uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }

  float(): number {
    return this.next();
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** One of `options`, chosen with probability proportional to its weight. */
  weighted<T>(options: readonly (readonly [number, T])[]): T {
    const total = options.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, v] of options) if ((r -= w) < 0) return v;
    return options[options.length - 1][1];
  }

  bytes(n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }

  /** `n` characters drawn from `alphabet`. */
  string(n: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }

  hex(n: number): string {
    return this.string(n, '0123456789abcdef');
  }
}

export interface HttpRequest {
  readonly method: string;
  /** Path and query, appended to the base URL as is (fetch's URL parser may normalise it). */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array<ArrayBuffer> | string;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** Sends one request (no redirects followed); the whole response body is read as text. */
export async function send(baseUrl: string, r: HttpRequest, timeoutMs = 30_000): Promise<HttpResponse> {
  const res = await fetch(`${baseUrl}${r.path}`, {
    method: r.method,
    headers: r.headers,
    body: r.method === 'GET' || r.method === 'HEAD' ? undefined : r.body,
    redirect: 'manual',
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The parsed JSON body when it is a JSON object with a string `error`; undefined otherwise. */
export function errorBodyOf(res: HttpResponse): { error: string; reason?: string; issues?: unknown[] } | undefined {
  try {
    const body = JSON.parse(res.text) as unknown;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
    const b = body as { error?: unknown; reason?: unknown; issues?: unknown };
    if (typeof b.error !== 'string') return undefined;
    if (b.reason !== undefined && typeof b.reason !== 'string') return undefined;
    if (b.issues !== undefined && !Array.isArray(b.issues)) return undefined;
    return b as { error: string; reason?: string; issues?: unknown[] };
  } catch {
    return undefined;
  }
}

/** Runs `fn` over `items` with at most `concurrency` in flight; results in input order. */
export async function inPool<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  });
  await Promise.all(lanes);
  return out;
}

/** A short, printable description of a body for failure messages. */
export function preview(body: HttpRequest['body'], max = 120): string {
  if (body === undefined) return '(none)';
  if (typeof body === 'string') return `${JSON.stringify(body.slice(0, max))}${body.length > max ? `… (${body.length} chars)` : ''}`;
  return `${body.byteLength} bytes [${Array.from(body.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join(' ')}${body.byteLength > 16 ? ' …' : ''}]`;
}
