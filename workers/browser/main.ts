// The browser worker page: joins a run as a gradient worker. The work loop, its API client and the
// lease heartbeats run here in the main thread, exactly as every other worker runs them
// (workers/gradient/loop.ts); ORT runs in a Web Worker behind comlink (compute-worker.ts), on WebGPU when the
// browser offers an adapter and ORT can run the training graph on it, on WASM otherwise.
//
//   index.html#api=<API url>&run=<run id>&token=<worker token>&ep=auto|webgpu|wasm
//
// (or the form on the page). The run's coordinator gives the page its worker id: each page load mints one. Served by the API Worker itself (<api>/worker/, cli/cluster/deploy-assets.ts),
// the page's meta tags say so: `api` may then be left out (the page's own origin), and only the ORT
// builds it names are there. Progress is shown in the page and kept in `window.edgetrainWorker`.
import type { Lease, RunState, SubmitReply } from '../../shared/protocol';
import { median } from '../../shared/stats';
import { BlockCache } from '../gradient/block-cache';
import { ApiClient } from '../gradient/client';
import { workLoop, type WorkReport } from '../gradient/loop';
import type { BrowserEp } from '../ort/browser';
import { BrowserComputer, type EpChoice } from './browser-computer';

export interface WorkerParams {
  readonly api: string;
  readonly run: string;
  readonly token: string;
  readonly ep: EpChoice;
}

/** What the page shows, also readable by tests as `window.edgetrainWorker`. */
export interface BrowserWorkerStatus {
  /** The execution provider in use (null until the Web Worker is up). */
  ep: BrowserEp | null;
  requested: EpChoice | null;
  /** The WebGPU adapter the page saw. */
  adapter: string | null;
  /** Why WebGPU was not tried here (no navigator.gpu, no adapter). */
  webgpuUnavailable: string | null;
  /** Why this page fell back from WebGPU to WASM. */
  fallback: string | null;
  /**
   * Leases taken; answers accepted; answers not counted (a duplicate); leases dropped (the answer
   * refused with its reason, or the lease overtaken by the run: HTTP 400/404/409/410/422).
   */
  leases: number;
  accepted: number;
  rejected: number;
  dropped: number;
  /** Compute milliseconds per lease, by provider and kind. */
  ms: Record<BrowserEp, { train: number[]; eval: number[] }>;
  running: boolean;
  done: boolean;
  /** How the loop ended: 'done' (the run is over), 'excluded', 'stopped'. */
  reason: WorkReport['reason'] | null;
  runState: RunState | null;
  /** The id the run's coordinator minted for this page (null until it joined). */
  workerId: string | null;
  error: string | null;
  log: string[];
}

declare global {
  interface Window {
    edgetrainWorker: BrowserWorkerStatus;
  }
}

const status: BrowserWorkerStatus = {
  ep: null,
  requested: null,
  adapter: null,
  webgpuUnavailable: null,
  fallback: null,
  leases: 0,
  accepted: 0,
  rejected: 0,
  dropped: 0,
  ms: { webgpu: { train: [], eval: [] }, wasm: { train: [], eval: [] } },
  running: false,
  done: false,
  reason: null,
  runState: null,
  workerId: null,
  error: null,
  log: [],
};
window.edgetrainWorker = status;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function render(): void {
  const ep = status.ep ? `${status.ep === 'webgpu' ? 'WebGPU' : 'WASM'}${status.ep === 'webgpu' && status.adapter ? ` (${status.adapter})` : ''}` : '—';
  $('s-ep').textContent = ep;
  $('s-ep-note').textContent = status.fallback ? `fell back from WebGPU: ${status.fallback}` : status.webgpuUnavailable ? `WebGPU not used: ${status.webgpuUnavailable}` : '';
  $('s-leases').textContent = String(status.leases);
  $('s-accepted').textContent = String(status.accepted);
  $('s-rejected').textContent = String(status.rejected);
  $('s-dropped').textContent = String(status.dropped);
  const m = status.ep && status.ms[status.ep].train.length ? median(status.ms[status.ep].train) : null;
  $('s-ms').textContent = m === null ? '—' : `${m.toFixed(0)} ms`;
  $('s-state').textContent = status.error ? 'stopped by an error' : status.done ? `finished (${status.reason}${status.runState ? `, run ${status.runState}` : ''})` : status.running ? 'working' : 'idle';
  $('s-error').textContent = status.error ?? '';
  $('log').textContent = status.log.slice(-20).join('\n');
}

function log(line: string): void {
  if (/^lease \S+ \(step \d+, shard \d+\) dropped: /.test(line)) status.dropped++;
  status.log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
  if (status.log.length > 500) status.log.splice(0, status.log.length - 500);
  render();
}

/** Counts answers as they come back (the loop itself reports only at its end). */
class CountingClient extends ApiClient {
  private async counted(submit: () => Promise<SubmitReply>): Promise<SubmitReply> {
    const reply = await submit();
    if (reply.accepted) status.accepted++;
    else status.rejected++;
    render();
    return reply;
  }

  override submitGradient(lease: Lease, frame: Uint8Array<ArrayBuffer>): Promise<SubmitReply> {
    return this.counted(() => super.submitGradient(lease, frame));
  }

  override submitEval(lease: Lease, frame: Uint8Array<ArrayBuffer>): Promise<SubmitReply> {
    return this.counted(() => super.submitEval(lease, frame));
  }
}

/** What the page's server wrote into index.html (none: the CLI's page, with every ORT build). */
export interface PageSettings {
  /** The API's origin when the page is served by the API itself. */
  readonly api?: string;
  /** The execution providers whose ORT build is served beside the page. */
  readonly eps: readonly BrowserEp[];
}

function pageSettings(): PageSettings {
  const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content;
  const eps = meta('edgetrain-eps');
  return {
    ...(meta('edgetrain-api') === 'same-origin' ? { api: location.origin } : {}),
    eps: eps ? (eps.split(',').filter((e) => e === 'webgpu' || e === 'wasm') as BrowserEp[]) : ['webgpu', 'wasm'],
  };
}

export function parseParams(source: string, defaultApi = ''): WorkerParams | { missing: string[] } {
  const q = new URLSearchParams(source.replace(/^#/, ''));
  const get = (k: string) => q.get(k)?.trim() ?? '';
  const p = { api: (get('api') || defaultApi).replace(/\/$/, ''), run: get('run'), token: get('token'), ep: (get('ep') || 'auto') as EpChoice };
  const missing: string[] = (['api', 'run', 'token'] as const).filter((k) => !p[k]);
  if (!['auto', 'webgpu', 'wasm'].includes(p.ep)) missing.push('ep (auto, webgpu or wasm)');
  return missing.length ? { missing } : p;
}

const settings = pageSettings();

async function start(p: WorkerParams): Promise<void> {
  status.running = true;
  status.requested = p.ep;
  ($('form') as HTMLFormElement).hidden = true;
  $('who').textContent = `joining run ${p.run} at ${p.api}`;
  render();
  let computer: BrowserComputer | undefined;
  try {
    const workerUrl = new URL('./compute.js', import.meta.url);
    const webgpuOff = settings.eps.includes('webgpu') ? undefined : "this page is served without ORT's WebGPU build (over Cloudflare's 25 MiB static asset limit); `edgetrain browser` serves one with it";
    computer = await BrowserComputer.start(p.ep, workerUrl, new URL('./', workerUrl).href, {
      log,
      onEp(ep, info) {
        status.ep = ep;
        status.adapter = info.adapter ?? null;
        status.webgpuUnavailable = info.webgpuUnavailable ?? null;
        status.fallback = info.fallback ?? null;
        render();
      },
    }, webgpuOff);
    status.ms = computer.ms;
    log(`computing on ${computer.ep}${computer.ep === 'webgpu' ? ` (${computer.adapter})` : ''}`);
    const api = new CountingClient(p.api, { token: p.token, retryForMs: 60_000 });
    status.workerId = (await api.identity(p.run)).workerId;
    $('who').textContent = `${status.workerId} on run ${p.run} at ${p.api}`;
    const report = await workLoop({
      api,
      runId: p.run,
      computer,
      cache: new BlockCache(256 * 1024 * 1024),
      budgetMs: Number.POSITIVE_INFINITY,
      heartbeat: true,
      log,
      onLease(lease) {
        status.leases++;
        log(`lease ${lease.kind} step ${lease.step} shard ${lease.shard} (${lease.indices.length} examples, version ${lease.version})`);
      },
    });
    // The loop's own counts are the final word (its `rejected` = answers not counted + leases dropped).
    status.leases = report.leases;
    status.accepted = report.accepted;
    status.dropped = report.rejected - status.rejected;
    status.reason = report.reason;
    status.runState = report.state ?? null;
    log(`finished: ${report.reason}${report.state ? ` (run ${report.state})` : ''}; ${report.accepted} accepted, ${report.rejected} refused or dropped of ${report.leases} leases`);
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    // A browser says no more than this when the API is unreachable or refuses the page's origin.
    status.error = e instanceof TypeError && /fetch/i.test(text) ? `${text}: the API at ${p.api} is unreachable, or does not allow this page's origin (CORS)` : text;
    log(`error: ${status.error}`);
  } finally {
    computer?.dispose();
    status.running = false;
    status.done = true;
    render();
  }
}

function main(): void {
  const form = $('form') as HTMLFormElement;
  const parsed = parseParams(location.hash, settings.api);
  if ('missing' in parsed) {
    // Prefill what the fragment had; the form sets the fragment and starts.
    const q = new URLSearchParams(location.hash.replace(/^#/, ''));
    for (const k of ['api', 'run', 'token', 'ep']) {
      const v = q.get(k);
      const input = form.elements.namedItem(k) as HTMLInputElement | HTMLSelectElement | null;
      if (v && input) input.value = v;
    }
    const apiInput = form.elements.namedItem('api') as HTMLInputElement;
    if (!apiInput.value && settings.api) apiInput.value = settings.api;
    form.hidden = false;
    if (location.hash.length > 1) status.error = `missing in the fragment: ${parsed.missing.join(', ')}`;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const fields = new FormData(form);
      const q = new URLSearchParams();
      for (const k of ['api', 'run', 'token', 'ep']) q.set(k, String(fields.get(k) ?? ''));
      const p = parseParams(q.toString(), settings.api);
      if ('missing' in p) {
        status.error = `missing: ${p.missing.join(', ')}`;
        render();
        return;
      }
      status.error = null;
      history.replaceState(null, '', `#${q}`);
      void start(p);
    });
    render();
    return;
  }
  void start(parsed);
}

main();
