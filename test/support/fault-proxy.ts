// An HTTP proxy between gradient workers and the API that injects faults: it sees every request and
// decides what reaches the coordinator (as sent, corrupted, twice, later) and what the worker gets
// back. With the upstream gone (a coordinator restarting) it answers 502, as an edge would.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  readonly method: string;
  /** Path and query, as the worker sent them. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Uint8Array<ArrayBuffer>;
}

export interface ProxiedResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array<ArrayBuffer>;
}

/** Sends a request (this one, or a changed copy) to the coordinator. */
export type Forward = (req: ProxiedRequest) => Promise<ProxiedResponse>;

/** Decides a request's fate; the default forwards it unchanged. */
export type FaultHook = (req: ProxiedRequest, forward: Forward) => Promise<ProxiedResponse>;

export interface FaultProxy {
  readonly url: string;
  /** Where requests go from now on (a restarted coordinator listens elsewhere). */
  setUpstream(url: string | undefined): void;
  setHook(hook: FaultHook | undefined): void;
  /** Forwards a request outside any worker's connection (a replay). */
  readonly forward: Forward;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'content-encoding']);

export const json = (res: ProxiedResponse): unknown => JSON.parse(new TextDecoder().decode(res.body));

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  let target: string | undefined = upstream;
  let hook: FaultHook | undefined;

  const forward: Forward = async (req) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const gone = (why: string): ProxiedResponse => ({
      status: 502,
      headers: { 'content-type': 'application/json' },
      body: new TextEncoder().encode(JSON.stringify({ error: `upstream unavailable: ${why}`, reason: 'upstream' })),
    });
    if (!target) return gone('no coordinator');
    try {
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      const res = await fetch(`${target}${req.path}`, { method: req.method, headers, body: hasBody ? req.body : undefined });
      const out: Record<string, string> = {};
      res.headers.forEach((v, k) => {
        if (!HOP_BY_HOP.has(k)) out[k] = v;
      });
      return { status: res.status, headers: out, body: new Uint8Array(await res.arrayBuffer()) };
    } catch (e) {
      return gone((e as { cause?: { code?: string } }).cause?.code ?? String(e));
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = new Uint8Array(Buffer.concat(chunks));
      const proxied: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body };
      (hook ?? ((r, f) => f(r)))(proxied, forward).then(
        (out) => {
          res.writeHead(out.status, out.headers);
          res.end(out.body);
        },
        (e: unknown) => {
          res.writeHead(599, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: `fault hook failed: ${String(e)}` }));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setUpstream: (url) => void (target = url),
    setHook: (h) => void (hook = h),
    forward,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
