// The abuse suite, seeded fuzz of the success paths: valid operations (run creations with random small
// configs, worker identities minted, leases, heartbeats, honest gradient and eval answers, duplicates,
// status and metrics reads, cancels and resumes) interleaved with careless ones (corrupt frames on a
// worker's own lease) and malformed ones (bad ids, junk bodies, wrong tokens), one at a time against
// the real Worker bundle in Miniflare. A model of every run (state, step, phase, counted shards, each
// lease and worker) says what each request must be answered; at the end every run not cancelled is
// driven to completion by honest answers. FUZZ_SEED=<n> replays a seed (FUZZ_OPS=<n> sets the length).
//
// Lease deadlines adapt to answer times, so whether a lease is still open when the coordinator looks
// depends on the clock: the model knows every deadline it was told, and where one falls within SLACK_MS
// of the request it accepts either answer.
import { describe, expect, it } from 'vitest';
import type { LocalCoordinator } from '../../cli/cluster/local';
import type { Lease, LeaseBounds, LeaseReply, RunCreated, RunRequest, RunSpec, RunState, RunStatus, SubmitReply, WorkerIdentity } from '../../shared/protocol';
import { ApiClient, ApiError } from '../../workers/gradient/client';
import { FIXTURE_DATASET, useFixtureCoordinator } from '../support/fixture-dataset';
import { errorBodyOf, preview, Rng, send, type HttpRequest } from '../support/fuzz';
import { evalFrame, gradientFrame } from '../support/hand-worker';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_0101);
const OPS = Number(process.env.FUZZ_OPS ?? 300);
/** Node's clock against workerd's, and the moment the coordinator reads it within a request. */
const SLACK_MS = 50;
const MAX_RUNS = 5;
const MAX_WORKERS_PER_RUN = 6;
/** Lease requests the model expects to be held for the whole long poll (~2 s each). */
const MAX_WAITS = 3;
/** A worker is excluded after this many bad answers in a row (coordinator/worker-record.ts). */
const EXCLUDE_AFTER = 3;
const MAX_OPEN_LEASES = 2;

let coordinator: LocalCoordinator;
let api: ApiClient;

useFixtureCoordinator((local) => ({ coordinator, api } = local));

// ---------- the model ----------

interface MWorker {
  readonly name: string;
  readonly id: string;
  readonly credential: string;
  readonly client: ApiClient;
  accepted: number;
  rejected: number;
  streak: number;
  excluded: boolean;
}

interface MLease {
  readonly lease: Lease;
  readonly worker: MWorker;
  /** The coordinator's row: active (open or expired), done (answer counted), rejected (an answer refused as bad data), gone (deleted). */
  state: 'active' | 'done' | 'rejected' | 'gone';
  deadline: number;
  /** The first deadline: after it another worker may be given the shard as a backup. */
  readonly backupAt: number;
  /** The honest answer, once sent. */
  frame?: Uint8Array<ArrayBuffer>;
}

interface MRun {
  readonly name: string;
  readonly runId: string;
  readonly workerToken: string;
  readonly spec: RunSpec;
  readonly request: RunRequest;
  state: RunState;
  step: number;
  phase: 'train' | 'eval';
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  readonly trainShards: number;
  readonly evalShards: number;
  /** Train shards counted for the current step. */
  counted: Set<number>;
  /** Eval shards counted, per step (the coordinator stores them). */
  readonly evalDone: Map<number, Set<number>>;
  readonly leases: MLease[];
  readonly workers: MWorker[];
  /** Whether a cancel ended it (and it was not resumed since). */
  readonly cancels: number[];
}

const FINAL: readonly RunState[] = ['completed', 'failed', 'cancelled'];
const isFinal = (r: MRun) => FINAL.includes(r.state);

async function answer<T>(p: Promise<T>): Promise<{ status: number; body: unknown }> {
  try {
    return { status: 200, body: await p };
  } catch (e) {
    if (e instanceof ApiError) return { status: e.status, body: e.body };
    throw e;
  }
}

/** A failed expectation: what the model said, with the seed and the operation. */
class ModelError extends Error {}

// ---------- the fuzz ----------

describe('seeded fuzz of success paths', () => {
  it('valid creates, mints, leases, answers, cancels and resumes interleaved with malformed requests → each answered as the model says; every run completes', async () => {
    const rng = new Rng(SEED);
    const runs: MRun[] = [];
    const log: string[] = [];
    const counts: Record<string, number> = {};
    let waits = 0;
    let opIndex = -1;
    let op = '';

    const fail = (what: string, got: unknown): never => {
      throw new ModelError(
        `FUZZ_SEED=${SEED}: operation #${opIndex} ${op}\n  expected ${what}\n  got ${JSON.stringify(got)?.slice(0, 600)}\n  last operations:\n    ${log.slice(-12).join('\n    ')}`,
      );
    };
    const expectThat = (ok: boolean, what: string, got: unknown) => {
      if (!ok) fail(what, got);
    };
    const reasonOf = (a: { body: unknown }) => (a.body as { reason?: string } | undefined)?.reason;
    const expectRefusal = (a: { status: number; body: unknown }, status: number, reason?: string) =>
      expectThat(a.status === status && (reason === undefined || reasonOf(a) === reason), `${status}${reason ? ` ${reason}` : ''}`, { status: a.status, body: a.body });
    const begin = (name: string, detail: string) => {
      opIndex++;
      op = `${name}: ${detail}`;
      counts[name] = (counts[name] ?? 0) + 1;
      log.push(`#${opIndex} ${op}`);
    };
    const note = (s: string): void => {
      log[log.length - 1] += ` → ${s}`;
    };

    // ---------- model transitions ----------

    const forgetLeases = (run: MRun, which: (l: MLease) => boolean) => {
      for (const l of run.leases) if (l.state !== 'gone' && which(l)) l.state = 'gone';
    };
    /** The coordinator applied the current step: the next, or the epoch's evaluation. */
    const stepApplied = (run: MRun) => {
      run.step++;
      run.counted = new Set();
      if (run.step % run.stepsPerEpoch === 0) run.phase = 'eval';
      forgetLeases(run, (l) => l.lease.kind === 'train' && l.lease.step < run.step - 1);
    };
    const evalFinished = (run: MRun) => {
      run.phase = 'train';
      forgetLeases(run, (l) => l.lease.kind === 'eval');
      if (run.step / run.stepsPerEpoch >= run.spec.config.train.epochs) {
        run.state = 'completed';
        forgetLeases(run, () => true);
      }
    };
    const evalDoneNow = (run: MRun) => run.evalDone.get(run.step) ?? new Set<number>();
    /** Whether the lease's shard is counted at the lease's step (the coordinator's `counted`). */
    const shardCounted = (run: MRun, l: MLease) =>
      l.lease.kind === 'train' ? l.lease.step === run.step && run.counted.has(l.lease.shard) : (run.evalDone.get(l.lease.step)?.has(l.lease.shard) ?? false);
    const badAnswer = (run: MRun, w: MWorker, l: MLease | undefined) => {
      w.rejected++;
      w.streak++;
      if (l && l.state === 'active') l.state = 'rejected';
      if (w.streak >= EXCLUDE_AFTER && !w.excluded) {
        w.excluded = true;
        for (const x of run.leases) if (x.worker === w && x.state === 'active') x.state = 'rejected';
      }
    };

    // ---------- what a request must be answered, by the model ----------

    /** A worker request's refusal before anything else: an excluded worker (the run's state is not looked at). */
    const gateOf = (w: MWorker) => (w.excluded ? { status: 403, reason: 'excluded' } : undefined);
    /** The refusals an answer gets before its frame is judged (an excluded worker, a finished run, a spent lease): true when one applied. */
    const refusedBeforeJudged = (a: { status: number; body: unknown }, w: MWorker, run: MRun, l: MLease): boolean => {
      const gate = gateOf(w);
      if (gate) {
        expectRefusal(a, gate.status, gate.reason);
        return true;
      }
      if (!isFinal(run) && l.state !== 'gone' && l.state !== 'rejected') return false;
      w.rejected++;
      if (isFinal(run)) expectRefusal(a, 409, 'finished');
      else expectRefusal(a, 409, 'unknown-lease');
      return true;
    };

    /** Open at the coordinator when it looked, sometime in [t0, t1]: 'yes', 'no' or 'either'. */
    const openAt = (deadline: number, t0: number, t1: number) => (deadline > t1 + SLACK_MS ? 'yes' : deadline <= t0 - SLACK_MS ? 'no' : 'either');

    // ---------- operations ----------

    const RUN_BASE = { dataset: FIXTURE_DATASET, evalBatch: 50 } as const;

    async function create(): Promise<void> {
      const batch = rng.pick([32, 64]);
      const microBatch = rng.pick([16, 32, 64].filter((m) => m <= batch && batch % m === 0));
      const request: RunRequest = {
        ...RUN_BASE,
        trainLimit: rng.int(64, 128),
        batch,
        epochs: rng.int(1, 2),
        optimizer: rng.pick([{ kind: 'sgd' as const, lr: 0.05, momentum: 0 }, { kind: 'adam' as const, lr: 0.001 }]),
        cluster: { microBatch, leaseMs: 60_000 },
      };
      begin('create', JSON.stringify(request));
      const a = await answer(api.createRun(request));
      if (a.status !== 200) fail('201 and a created run', a);
      const created = a.body as RunCreated;
      const stepsPerEpoch = Math.floor(request.trainLimit! / batch);
      const totalSteps = stepsPerEpoch * request.epochs!;
      expectThat(created.state === 'created' && created.step === 0 && created.totalSteps === totalSteps && typeof created.workerToken === 'string', `state 'created', step 0, totalSteps ${totalSteps}, a worker token`, created);
      const spec = await api.spec(created.runId);
      const run: MRun = {
        name: `run${runs.length}`,
        runId: created.runId,
        workerToken: created.workerToken,
        spec,
        request,
        state: 'created',
        step: 0,
        phase: 'train',
        stepsPerEpoch,
        totalSteps,
        trainShards: batch / microBatch,
        evalShards: Math.ceil(spec.dataset.test.count / 50),
        counted: new Set(),
        evalDone: new Map(),
        leases: [],
        workers: [],
        cancels: [],
      };
      runs.push(run);
      note(`${run.name} = ${run.runId} (${totalSteps} steps of ${run.trainShards} shards, ${run.evalShards} eval shards)`);
    }

    async function mint(run: MRun): Promise<MWorker | undefined> {
      const viaWorkerToken = rng.chance(0.5);
      begin('mint', `${run.name} with ${viaWorkerToken ? "the run's worker token" : 'the API token'}`);
      const minter = viaWorkerToken ? new ApiClient(coordinator.url, { token: run.workerToken }) : api;
      const a = await answer(minter.mintWorker(run.runId));
      if (isFinal(run)) return void expectRefusal(a, 409, 'finished');
      if (a.status !== 200) fail('a minted identity', a);
      const identity = a.body as WorkerIdentity;
      expectThat(/^w-[0-9a-f]{16}$/.test(identity.workerId) && !run.workers.some((w) => w.id === identity.workerId), 'a new worker id w-<16 hex>', identity);
      const w: MWorker = { name: `${run.name}/w${run.workers.length}`, id: identity.workerId, credential: identity.credential, client: new ApiClient(coordinator.url, { token: identity.credential }), accepted: 0, rejected: 0, streak: 0, excluded: false };
      run.workers.push(w);
      note(w.name);
      return w;
    }

    /** Shards a lease request may be given now (`possible`), and whether one is surely free (`certain`). */
    function freeShards(run: MRun, t0: number, t1: number): { possible: Set<number>; certain: boolean } {
      const n = run.phase === 'train' ? run.trainShards : run.evalShards;
      const counted = run.phase === 'train' ? run.counted : evalDoneNow(run);
      const possible = new Set<number>();
      let certain = false;
      for (let shard = 0; shard < n; shard++) {
        if (counted.has(shard)) continue;
        const rows = run.leases.filter((l) => l.lease.kind === run.phase && l.lease.step === run.step && l.lease.shard === shard && l.state !== 'gone');
        if (rows.some((l) => l.state === 'done')) continue;
        const active = rows.filter((l) => l.state === 'active');
        const backup = active.map((l) => openAt(Math.min(l.deadline, l.backupAt), t0, t1));
        const open = active.map((l) => openAt(l.deadline, t0, t1));
        if (backup.includes('yes') || open.filter((o) => o === 'yes').length >= 2) continue;
        possible.add(shard);
        if (!backup.includes('either') && open.filter((o) => o !== 'no').length < 2) certain = true;
      }
      return { possible, certain };
    }

    async function lease(run: MRun, w: MWorker): Promise<void> {
      begin('lease', `${w.name} on ${run.name} (${run.state}, step ${run.step} ${run.phase})`);
      const t0 = Date.now();
      const a = await answer(w.client.lease(run.runId));
      const t1 = Date.now();
      const gate = gateOf(w);
      if (gate) return expectRefusal(a, gate.status, gate.reason);
      if (isFinal(run)) return void expectThat(a.status === 200 && JSON.stringify(a.body) === JSON.stringify({ type: 'done', state: run.state }), `{type: 'done', state: '${run.state}'}`, a);
      const open = run.leases.filter((l) => l.worker === w && l.state === 'active').map((l) => openAt(l.deadline, t0, t1));
      const surelyHeld = open.filter((o) => o === 'yes').length;
      const maybeHeld = open.filter((o) => o !== 'no').length;
      if (a.status === 429) {
        expectThat(maybeHeld >= MAX_OPEN_LEASES && reasonOf(a) === 'too-many-leases', `no 429 (${w.name} holds ${surelyHeld}–${maybeHeld} open leases)`, a);
        return note('429 too-many-leases');
      }
      expectThat(surelyHeld < MAX_OPEN_LEASES, `429 too-many-leases (${w.name} holds ${surelyHeld} open leases)`, a);
      if (a.status !== 200) fail('a lease reply', a);
      const reply = a.body as LeaseReply;
      const { possible, certain } = freeShards(run, t0, t1);
      if (reply.type === 'wait') {
        expectThat(!certain, `a lease (shards ${[...possible].join(', ')} are free)`, reply);
        waits++;
        return note('wait');
      }
      if (reply.type !== 'lease') fail('a lease or wait', reply);
      const l = (reply as Extract<LeaseReply, { type: 'lease' }>).lease;
      const size = run.phase === 'train' ? run.spec.config.cluster.microBatch : Math.min(50, run.spec.dataset.test.count - l.shard * 50);
      expectThat(
        l.runId === run.runId && l.kind === run.phase && l.step === run.step && l.version === run.step && possible.has(l.shard) && l.indices.length === size,
        `a ${run.phase} lease of step ${run.step} for one of shards {${[...possible].join(', ')}} with ${size} examples`,
        { ...l, indices: `${l.indices.length} indices`, token: '…' },
      );
      if (run.state === 'created') run.state = 'training';
      run.leases.push({ lease: l, worker: w, state: 'active', deadline: l.deadline, backupAt: l.deadline });
      note(`${l.kind} step ${l.step} shard ${l.shard}, ${l.deadline - t1} ms`);
    }

    async function heartbeat(run: MRun, l: MLease): Promise<void> {
      begin('heartbeat', `${l.worker.name} ${l.lease.kind} step ${l.lease.step} shard ${l.lease.shard} (${l.state})`);
      const t0 = Date.now();
      const a = await answer(l.worker.client.heartbeat(l.lease));
      const t1 = Date.now();
      const gate = gateOf(l.worker);
      if (gate) return expectRefusal(a, gate.status, gate.reason);
      const open = l.state === 'active' && !isFinal(run) ? openAt(l.deadline, t0, t1) : 'no';
      if (a.status === 200) {
        const { deadline } = a.body as { deadline: number };
        expectThat(open !== 'no' && deadline >= l.deadline && deadline <= (l.lease as Lease & LeaseBounds).expiresAt, `409 unknown-lease (the lease is ${l.state}, deadline ${l.deadline - t0} ms from now)`, a);
        l.deadline = deadline;
        return note(`deadline +${deadline - t1} ms`);
      }
      expectThat(open !== 'yes', `200 (the lease is open for ${l.deadline - t1} ms)`, a);
      expectRefusal(a, 409, 'unknown-lease');
    }

    /** 1e-3 × (step·7 + shard + 1), varied along the vector: finite, small, different for every (step, shard). */
    const honestFrame = (run: MRun, l: MLease): Uint8Array<ArrayBuffer> => {
      if (l.lease.kind === 'eval') {
        const n = l.lease.indices.length;
        return evalFrame(l.lease, 2 * n, rng.int(0, n));
      }
      const base = 1e-3 * (l.lease.step * 7 + l.lease.shard + 1);
      return gradientFrame(l.lease, run.spec, (i) => base * (1 + (i % 5) / 4), { loss: 2.3, correct: rng.int(0, l.lease.indices.length) });
    };

    /** Posts the lease's honest answer (again, when `again`): the model's verdict on it. */
    async function submit(run: MRun, l: MLease, again = false): Promise<void> {
      const w = l.worker;
      begin(again ? 'duplicate' : 'answer', `${w.name} ${l.lease.kind} step ${l.lease.step} shard ${l.lease.shard} (lease ${l.state}; ${run.name} ${run.state}, step ${run.step} ${run.phase})`);
      const frame = again && l.frame ? l.frame : honestFrame(run, l);
      l.frame = frame;
      const post = l.lease.kind === 'train' ? w.client.submitGradient(l.lease, frame) : w.client.submitEval(l.lease, frame);
      const a = await answer(post);
      if (refusedBeforeJudged(a, w, run, l)) return;
      if (l.state === 'done' || shardCounted(run, l)) {
        expectThat(a.status === 200 && JSON.stringify(a.body) === JSON.stringify({ accepted: false, reason: 'duplicate', version: run.step }), `{accepted: false, reason: 'duplicate', version: ${run.step}}`, a);
        return note('duplicate');
      }
      if (l.lease.step !== run.step || l.lease.kind !== run.phase) {
        w.rejected++;
        return expectRefusal(a, 409, 'stale');
      }
      // Counted: the step (or the evaluation) completes when it was the last shard.
      l.state = 'done';
      w.accepted++;
      w.streak = 0;
      if (l.lease.kind === 'train') {
        run.counted.add(l.lease.shard);
        if (run.counted.size === run.trainShards) stepApplied(run);
      } else {
        const done = evalDoneNow(run);
        done.add(l.lease.shard);
        run.evalDone.set(run.step, done);
        if (done.size === run.evalShards) evalFinished(run);
      }
      const reply = a.body as SubmitReply;
      expectThat(a.status === 200 && reply.accepted === true && reply.version === run.step, `{accepted: true, version: ${run.step}}`, a);
      note(`accepted; ${run.name} at step ${run.step} ${run.phase} (${run.state})`);
    }

    /** A careless worker: its own lease answered with a frame whose checksum fails. */
    async function corrupt(run: MRun, l: MLease): Promise<void> {
      const w = l.worker;
      begin('corrupt answer', `${w.name} ${l.lease.kind} step ${l.lease.step} shard ${l.lease.shard} (lease ${l.state}, streak ${w.streak})`);
      const frame = honestFrame(run, l).slice();
      frame[frame.length >> 1] ^= 0x40;
      const a = await answer(l.lease.kind === 'train' ? w.client.submitGradient(l.lease, frame) : w.client.submitEval(l.lease, frame));
      if (refusedBeforeJudged(a, w, run, l)) return;
      expectRefusal(a, 400, 'checksum');
      badAnswer(run, w, l);
      note(w.excluded ? `${w.name} excluded` : `streak ${w.streak}`);
    }

    async function status(run: MRun): Promise<void> {
      begin('status', run.name);
      const a = await answer(api.status(run.runId));
      if (a.status !== 200) fail('200', a);
      const s = a.body as RunStatus;
      const epoch = Math.floor(run.step / run.stepsPerEpoch) - (run.phase === 'eval' ? 1 : 0);
      expectThat(
        s.state === run.state && s.step === run.step && s.version === run.step && s.phase === run.phase && s.totalSteps === run.totalSteps && s.epoch === epoch,
        `state ${run.state}, step and version ${run.step}, phase ${run.phase}, epoch ${epoch}, totalSteps ${run.totalSteps}`,
        { state: s.state, step: s.step, version: s.version, phase: s.phase, epoch: s.epoch, totalSteps: s.totalSteps },
      );
      for (const w of run.workers) {
        const listed = s.workers.find((x) => x.worker === w.id);
        const got = listed && { accepted: listed.accepted, rejected: listed.rejected, excluded: listed.excluded !== undefined };
        const want = { accepted: w.accepted, rejected: w.rejected, excluded: w.excluded };
        if (!listed && w.accepted + w.rejected === 0) continue;
        expectThat(JSON.stringify(got) === JSON.stringify(want), `${w.name} (${w.id}) listed with ${JSON.stringify(want)}`, got ?? s.workers);
      }
    }

    async function metrics(run: MRun): Promise<void> {
      const since = rng.int(-1, run.step);
      begin('metrics', `${run.name} since ${since}`);
      const a = await answer(api.metrics(run.runId, since));
      if (a.status !== 200) fail('200', a);
      const steps = (a.body as { steps: { step: number }[] }).steps.map((s) => s.step);
      const want = Array.from({ length: Math.max(0, run.step - Math.max(since, 0)) }, (_, i) => Math.max(since, 0) + i + 1);
      expectThat(JSON.stringify(steps) === JSON.stringify(want), `steps [${want.join(', ')}]`, steps);
    }

    async function cancel(run: MRun): Promise<void> {
      begin('cancel', `${run.name} (${run.state}, step ${run.step} ${run.phase})`);
      const a = await answer(api.cancel(run.runId));
      if (!isFinal(run)) {
        run.state = 'cancelled';
        run.cancels.push(opIndex);
        forgetLeases(run, () => true);
      }
      expectThat(a.status === 200 && (a.body as RunStatus).state === run.state && (a.body as RunStatus).step === run.step, `200, state ${run.state}, step ${run.step}`, a);
    }

    async function resume(run: MRun): Promise<void> {
      begin('resume', `${run.name} (${run.state}, step ${run.step} ${run.phase})`);
      const a = await answer(api.resume(run.runId));
      if (run.state !== 'cancelled') return expectRefusal(a, 409, 'not-cancelled');
      run.state = run.step === 0 && run.phase === 'train' ? 'created' : 'training';
      run.counted = new Set();
      expectThat(a.status === 200 && (a.body as RunStatus).state === run.state && (a.body as RunStatus).step === run.step, `200, state ${run.state}, step ${run.step}`, a);
    }

    // ---------- malformed requests: 4xx with a JSON error, and nothing in the model changes ----------

    const bearer = (t: string) => `Bearer ${t}`;
    const json = 'application/json';
    const JUNK_JSON = ['{', '{"a":}', 'nul', '[1,2,', '"unterminated', '', 'NaN', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '1e999'];

    function malformedCases(run: MRun): [number, () => { req: HttpRequest; want: number[]; what: string }][] {
      const R = run.runId;
      const w = run.workers.find((x) => !x.excluded) ?? run.workers[0];
      const other = runs.find((r) => r !== run);
      const l = run.leases.at(-1);
      const validRequest = { ...RUN_BASE, trainLimit: 128, batch: 64, epochs: 1, cluster: { microBatch: 32 } };
      const mutations: [string, Record<string, unknown>][] = [
        ['microBatch not dividing batch', { cluster: { microBatch: 48 } }],
        ['batch wrong type', { batch: '64' }],
        ['epochs out of range', { epochs: rng.pick([0, -1, 1.5, 1e9]) }],
        ['unknown key', { [`zz${rng.string(3)}`]: 1 }],
        ['unknown dataset', { dataset: rng.pick(['nope', 'FIXTURE', '../fixture']) }],
        ['bad optimizer', { optimizer: rng.pick<unknown>([{ kind: 'nope' }, 'sgd', { kind: 'sgd', lr: -1 }]) }],
        ['trainLimit below one batch', { trainLimit: 10 }],
        ['evalBatch wrong type', { evalBatch: null }],
      ];
      const cases: [number, () => { req: HttpRequest; want: number[]; what: string }][] = [
        [4, () => {
          const [what, patch] = rng.pick(mutations);
          return { req: { method: 'POST', path: '/v1/runs', headers: { authorization: bearer(coordinator.token), 'content-type': json }, body: JSON.stringify({ ...validRequest, ...patch }) }, want: [400], what: `invalid run request: ${what}` };
        }],
        [1, () => ({ req: { method: 'POST', path: '/v1/runs', headers: { authorization: bearer(coordinator.token), 'content-type': json }, body: rng.pick(JUNK_JSON) }, want: [400], what: 'junk JSON run request' })],
        [1, () => ({ req: { method: 'POST', path: '/v1/runs', headers: { authorization: bearer(coordinator.token), 'content-type': 'text/plain' }, body: JSON.stringify(validRequest) }, want: [415], what: 'run request as text/plain' })],
        [1, () => ({ req: { method: 'POST', path: '/v1/runs', headers: { authorization: bearer(run.workerToken), 'content-type': json }, body: JSON.stringify(validRequest) }, want: [403], what: 'run request with a worker token' })],
        [1, () => ({ req: { method: 'GET', path: `/v1/runs/${R}` }, want: [401], what: 'status without a token' })],
        [1, () => ({ req: { method: 'GET', path: `/v1/runs/${R}`, headers: { authorization: bearer(rng.string(40)) } }, want: [401, 403], what: 'status with a garbage token' })],
        [1, () => ({ req: { method: 'GET', path: `/v1/runs/${R.toUpperCase()}`, headers: { authorization: bearer(coordinator.token) } }, want: [400], what: 'malformed run id' })],
        [1, () => ({ req: { method: 'GET', path: `/v1/runs/r00000000000000-deadbeef`, headers: { authorization: bearer(coordinator.token) } }, want: [404], what: 'unknown run' })],
        [1, () => ({ req: { method: 'GET', path: `/v1/runs/${R}/metrics?since=${rng.pick(['abc', '1.5', '-2', '1e99'])}`, headers: { authorization: bearer(coordinator.token) } }, want: [400], what: 'bad metrics query' })],
        [1, () => ({ req: { method: 'GET', path: `/v1/runs/${R}/params/${rng.pick(['-1', 'abc', '1.5', 'NaN', '0x10', '1e1', '+1'])}`, headers: { authorization: bearer(coordinator.token) } }, want: [400], what: 'bad parameter version' })],
        [1, () => ({ req: { method: 'POST', path: `/v1/runs/${R}/${rng.pick(['cancel', 'resume'])}`, headers: { authorization: bearer(run.workerToken) } }, want: [403], what: 'cancel or resume with the worker token' })],
        [1, () => ({ req: { method: 'POST', path: `/v1/runs/${R}/leases`, headers: { authorization: bearer(coordinator.token), 'content-type': json }, body: '{}' }, want: [403], what: 'lease with the API token' })],
        [1, () => ({ req: { method: 'POST', path: `/v1/runs/${R}/leases`, headers: { authorization: bearer(run.workerToken), 'content-type': json }, body: '{}' }, want: [403], what: "lease with the run's worker token" })],
        [1, () => ({ req: { method: 'GET', path: `/v1/nothing/${rng.string(5)}`, headers: { authorization: bearer(coordinator.token) } }, want: [404], what: 'no such route' })],
      ];
      if (other) {
        cases.push([1, () => ({ req: { method: 'GET', path: `/v1/runs/${R}/spec`, headers: { authorization: bearer(other.workerToken) } }, want: [403], what: "spec with another run's worker token" })]);
      }
      if (w) {
        cases.push(
          [2, () => ({ req: { method: 'POST', path: `/v1/runs/${R}/leases`, headers: { authorization: bearer(w.credential), 'content-type': json }, body: rng.pick(JUNK_JSON) }, want: [400], what: `lease with junk JSON as ${w.name}` })],
          [1, () => ({ req: { method: 'POST', path: `/v1/runs/${R}/leases`, headers: { authorization: bearer(w.credential), 'content-type': 'text/plain' }, body: '{}' }, want: [415], what: `lease as text/plain as ${w.name}` })],
          [1, () => ({ req: { method: 'POST', path: `/v1/runs/${R}/workers`, headers: { authorization: bearer(w.credential) } }, want: [403], what: `mint with ${w.name}'s credential` })],
          [1, () => ({ req: { method: 'POST', path: `/v1/runs/${R}/leases/${crypto.randomUUID()}/heartbeat`, headers: { authorization: bearer(w.credential), 'x-lease-token': rng.string(43) } }, want: [401, 403], what: `heartbeat of a made-up lease as ${w.name}` })],
        );
        if (other) cases.push([1, () => ({ req: { method: 'POST', path: `/v1/runs/${other.runId}/leases`, headers: { authorization: bearer(w.credential), 'content-type': json }, body: '{}' }, want: [403], what: `lease on another run with ${w.name}'s credential` })]);
      }
      if (l) {
        const path = `/v1/runs/${R}/leases/${l.lease.leaseId}/${l.lease.kind === 'train' ? 'gradient' : 'eval'}`;
        const stranger = run.workers.find((x) => x !== l.worker);
        cases.push(
          [2, () => ({ req: { method: 'POST', path, headers: { authorization: bearer(l.worker.credential) }, body: rng.bytes(rng.int(0, 512)) }, want: [401], what: `answer without its lease token (${l.worker.name})` })],
          [2, () => ({ req: { method: 'POST', path, headers: { authorization: bearer(l.worker.credential), 'x-lease-token': rng.string(43) }, body: rng.bytes(rng.int(0, 512)) }, want: [401, 403], what: `answer with a made-up lease token (${l.worker.name})` })],
          [1, () => ({ req: { method: 'POST', path, headers: { authorization: bearer(coordinator.token), 'x-lease-token': l.lease.token }, body: rng.bytes(64) }, want: [403], what: 'answer with the API token' })],
          [1, () => ({ req: { method: 'POST', path: `${path.slice(0, path.lastIndexOf('/'))}/heartbeat`, headers: { authorization: bearer(run.workerToken), 'x-lease-token': l.lease.token } }, want: [403], what: "heartbeat with the run's worker token" })],
        );
        if (stranger) cases.push([2, () => ({ req: { method: 'POST', path, headers: { authorization: bearer(stranger.credential), 'x-lease-token': l.lease.token }, body: rng.bytes(rng.int(0, 512)) }, want: [403], what: `${stranger.name} answering ${l.worker.name}'s lease with its token` })]);
      }
      return cases;
    }

    async function malformed(run: MRun): Promise<void> {
      const { req, want, what } = rng.weighted(malformedCases(run))();
      begin('malformed', `${what}: ${req.method} ${req.path} body=${preview(req.body, 60)}`);
      const res = await send(coordinator.url, req).catch(async (e: unknown) => {
        // Workerd closes a keep-alive socket after refusing a body it did not read; the next request on it is reset.
        const code = (e as { cause?: { code?: string } }).cause?.code;
        if (!['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE'].includes(code ?? '')) throw e;
        return send(coordinator.url, req);
      });
      const body = errorBodyOf(res);
      expectThat(want.includes(res.status) && body !== undefined && (res.headers.get('content-type') ?? '').includes('application/json'), `${want.join(' or ')} with a JSON error`, { status: res.status, text: res.text.slice(0, 300) });
      note(`${res.status} ${body?.reason ?? ''}`);
    }

    // ---------- the sequence ----------

    const liveWorkers = (run: MRun) => run.workers.filter((w) => !w.excluded);
    const openLeases = (run: MRun) => run.leases.filter((l) => l.state === 'active');

    /** A lease request the model expects not to be held for the long poll, or (rarely) one that may be. */
    async function someLease(run: MRun): Promise<void> {
      const now = Date.now();
      const { certain } = freeShards(run, now, now);
      if (!certain && !isFinal(run) && (waits >= MAX_WAITS || !rng.chance(0.1))) {
        const l = rng.pick(openLeases(run).filter((x) => !x.worker.excluded));
        return l ? submit(run, l) : undefined;
      }
      const candidates = rng.chance(0.9) ? liveWorkers(run) : run.workers;
      const w = rng.pick(candidates) ?? (await mint(run));
      if (w) await lease(run, w);
    }

    await create();
    while (opIndex < OPS) {
      const run = rng.pick(runs);
      const kind = rng.weighted<string>([
        [runs.length < MAX_RUNS ? 3 : 0, 'create'],
        [run.workers.length < MAX_WORKERS_PER_RUN && (liveWorkers(run).length < 2 || isFinal(run)) ? 6 : run.workers.length < MAX_WORKERS_PER_RUN ? 1 : 0, 'mint'],
        [run.workers.length ? 12 : 0, 'lease'],
        [run.leases.length ? 14 : 0, 'answer'],
        [run.leases.some((l) => l.frame) ? 3 : 0, 'duplicate'],
        [run.leases.length ? 3 : 0, 'heartbeat'],
        [run.leases.length ? 1 : 0, 'corrupt'],
        [3, 'status'],
        [2, 'metrics'],
        [isFinal(run) ? 0.3 : 1, 'cancel'],
        [run.state === 'cancelled' ? 6 : 0.5, 'resume'],
        [14, 'malformed'],
      ]);
      switch (kind) {
        case 'create':
          await create();
          break;
        case 'mint':
          await mint(run);
          break;
        case 'lease':
          await someLease(run);
          break;
        case 'answer': {
          // Mostly the open leases of the current step; now and then an old, answered or refused one.
          const open = openLeases(run);
          await submit(run, rng.chance(0.85) && open.length ? rng.pick(open) : rng.pick(run.leases));
          break;
        }
        case 'duplicate':
          await submit(run, rng.pick(run.leases.filter((l) => l.frame)), true);
          break;
        case 'heartbeat': {
          const open = openLeases(run);
          await heartbeat(run, rng.chance(0.8) && open.length ? rng.pick(open) : rng.pick(run.leases));
          break;
        }
        case 'corrupt':
          await corrupt(run, rng.pick(run.leases));
          break;
        case 'status':
          await status(run);
          break;
        case 'metrics':
          await metrics(run);
          break;
        case 'cancel':
          await cancel(run);
          break;
        case 'resume':
          await resume(run);
          break;
        case 'malformed':
          await malformed(run);
          break;
      }
    }
    const fuzzOps = opIndex + 1;

    // ---------- every run not cancelled, driven to completion by honest answers ----------

    for (const run of runs) {
      if (run.state === 'cancelled') continue;
      for (let guard = 0; run.state !== 'completed'; guard++) {
        if (guard > 400) fail(`${run.name} to complete`, { state: run.state, step: run.step, phase: run.phase });
        const mine = openLeases(run).find((l) => !l.worker.excluded && l.lease.step === run.step && l.lease.kind === run.phase);
        if (mine) {
          await submit(run, mine);
          continue;
        }
        const now = Date.now();
        const w = liveWorkers(run).find((x) => run.leases.filter((l) => l.worker === x && l.state === 'active' && l.deadline > now - SLACK_MS).length < MAX_OPEN_LEASES) ?? (await mint(run));
        if (!w) fail(`a worker for ${run.name}`, run.workers.length);
        await lease(run, w!);
      }
      await status(run);
      const s = await api.status(run.runId);
      expectThat(s.state === 'completed' && s.step === s.totalSteps && s.step === run.totalSteps && s.testAccuracy !== null && s.testAccuracy >= 0 && s.testAccuracy <= 1, `${run.name} completed, step === totalSteps, test accuracy in [0, 1]`, s);
    }

    const completed = runs.filter((r) => r.state === 'completed').length;
    console.log(JSON.stringify({ fuzz: { seed: SEED, fuzzOps, total: opIndex + 1, runs: runs.length, completed, cancelled: runs.length - completed, waits, counts } }));
    expect(fuzzOps).toBeGreaterThanOrEqual(OPS);
    expect(completed).toBeGreaterThan(0);
    for (const kind of ['create', 'mint', 'lease', 'answer', 'duplicate', 'heartbeat', 'status', 'malformed']) expect(counts[kind] ?? 0, `no ${kind} operation`).toBeGreaterThan(0);
  }, 180_000);
});
