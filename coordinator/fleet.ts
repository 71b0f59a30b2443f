// The supervised fleet of a run on a deployment: the chains of queue-consumer invocations that are its
// gradient workers, kept in the `chains` table. The coordinator mints every chain message; each
// invocation claims its chain with its delivery's ticket (generation, message id and attempt), so a
// duplicate delivery or an invocation whose chain was restarted is told to stop, and the alarm starts
// again every chain it has not heard from. Decisions only: the coordinator sends what they return.
import type { Queue, SqlStorage } from '@cloudflare/workers-types/index';
import type { ChainClaim, ChainMessage, ChainStop, ChainTicket, FleetStatus } from '../shared/protocol';

/** An invocation heard from within this window is alive: another delivery of its generation is a duplicate. */
export const CHAIN_LIVE_MS = 15_000;
/** How long after a chain went silent (or its dead-lettered message came back) its next invocation starts. */
export const RESTART_DELAY_S = 5;
/** A message not claimed this long after it was due is lost (a consumer slot normally takes it within seconds). */
export const UNCLAIMED_LOST_MS = 60_000;
/** Beyond the run's leaseMs (the longest a lease may be computed without a call), how long a chain may be silent. */
export const SILENT_MARGIN_MS = 20_000;
/** How often the alarm looks for silent chains while the run trains. */
export const FLEET_CHECK_MS = 5_000;
/** Cloudflare Queues: at most 100 messages (and 256 KB) per sendBatch (https://developers.cloudflare.com/queues/platform/limits/). */
export const SEND_BATCH_MAX = 100;
/** Worker ids of chains: reserved, so a hand-started worker cannot pass for one. */
export const CHAIN_PREFIX = 'chain-';

interface ChainRow extends Record<string, string | number | null> {
  chain: string;
  generation: number;
  invocation: string | null;
  /** When the current generation's message is due (sent + its delay). */
  due_at: number;
  restarts: number;
  /** The latest of the claim and the worker's last call, or null before a claim. */
  heard: number | null;
  /** 1 when the coordinator excluded the chain's worker id (bad answers): it is not started again. */
  excluded: number;
}

/** A chain message to send, `delaySeconds` after now; the coordinator signs the chain's credential into it. */
export interface ChainSend<M = Omit<ChainMessage, 'token'>> {
  readonly message: M;
  readonly delaySeconds: number;
}

const SELECT_CHAINS = `SELECT c.chain, c.generation, c.invocation, c.due_at, c.restarts,
    CASE WHEN c.claimed_at IS NULL THEN NULL ELSE MAX(c.claimed_at, COALESCE(w.last_seen, 0)) END AS heard,
    w.excluded_at IS NOT NULL AS excluded
  FROM chains c LEFT JOIN workers w ON w.worker = c.chain`;

const holds = (row: ChainRow, ticket: ChainTicket | undefined): boolean => ticket?.generation === row.generation && ticket.invocation === row.invocation;

const stop = (reason: ChainStop, error: string): ChainClaim => ({ type: 'stop', reason, error });

/** `id/attempts/nonce` → the delivery's message id and attempt. */
function delivery(invocation: string): { id: string; attempts: number } {
  const [nonce, attempts, ...id] = invocation.split('/').reverse();
  return { id: id.reverse().join('/'), attempts: nonce === undefined ? NaN : Number(attempts) };
}

export class Fleet {
  constructor(private readonly sql: SqlStorage) {}

  private rows(): ChainRow[] {
    return this.sql.exec<ChainRow>(`${SELECT_CHAINS} ORDER BY c.rowid`).toArray();
  }

  private row(chain: string): ChainRow | undefined {
    return this.sql.exec<ChainRow>(`${SELECT_CHAINS} WHERE c.chain = ?`, chain).toArray()[0];
  }

  get size(): number {
    return this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM chains').one().n;
  }

  /** New chains up to `target`, each at generation 1. */
  grow(runId: string, target: number, now: number): ChainSend[] {
    const sends: ChainSend[] = [];
    for (let i = this.size; i < target; i++) {
      const chain = `${CHAIN_PREFIX}${i}`;
      this.sql.exec('INSERT INTO chains (chain, generation, invocation, due_at, claimed_at, restarts) VALUES (?, 1, NULL, ?, NULL, 0)', chain, now);
      sends.push({ message: { runId, chain, generation: 1 }, delaySeconds: 0 });
    }
    return sends;
  }

  /**
   * The next generation of `chains`, due `delaySeconds` from now: a handover, a resumed run, or (with
   * `restart`, counted) a chain started again.
   */
  next(runId: string, chains: readonly string[], now: number, delaySeconds: number, restart: boolean): ChainSend[] {
    return chains.map((chain) => {
      this.sql.exec(
        'UPDATE chains SET generation = generation + 1, invocation = NULL, claimed_at = NULL, due_at = ?, restarts = restarts + ? WHERE chain = ?',
        now + delaySeconds * 1000,
        restart ? 1 : 0,
        chain,
      );
      const { generation } = this.sql.exec<{ generation: number }>('SELECT generation FROM chains WHERE chain = ?', chain).one();
      return { message: { runId, chain, generation }, delaySeconds };
    });
  }

  all(): string[] {
    return this.rows().map((r) => r.chain);
  }

  /**
   * An invocation starting on `chain`: it goes on when its ticket is the chain's current generation and
   * no other invocation of that generation is alive; a retry of the same message (a higher attempt)
   * takes over at once, since the queue retries only after the earlier attempt failed. The same ticket
   * again (the invocation's claim resent) goes on.
   */
  claim(chain: string, ticket: ChainTicket, now: number): ChainClaim {
    const row = this.row(chain);
    if (!row) return stop('unknown-chain', `this run has no chain '${chain}'`);
    if (ticket.generation !== row.generation) return stop('superseded', `chain ${chain} is at generation ${row.generation}; this invocation is generation ${ticket.generation}`);
    if (row.invocation !== null && row.invocation !== ticket.invocation) {
      const held = delivery(row.invocation);
      const mine = delivery(ticket.invocation);
      const retry = held.id === mine.id && mine.attempts > held.attempts;
      if (!retry && row.heard !== null && now - row.heard < CHAIN_LIVE_MS) {
        return stop('duplicate', `chain ${chain} generation ${row.generation} is already running (delivery ${row.invocation})`);
      }
    }
    this.sql.exec('UPDATE chains SET invocation = ?, claimed_at = ? WHERE chain = ?', ticket.invocation, now, chain);
    return { type: 'go' };
  }

  /**
   * Whether a lease request from `worker` may go on: a worker that is not a chain (started by hand)
   * always may; a chain's must carry the ticket that claimed it.
   */
  check(worker: string, ticket: ChainTicket | undefined): ChainClaim {
    const row = this.row(worker);
    if (!row) return worker.startsWith(CHAIN_PREFIX) || ticket ? stop('unknown-chain', `this run has no chain '${worker}'`) : { type: 'go' };
    if (!holds(row, ticket)) {
      return stop('superseded', `chain ${worker} is run by generation ${row.generation} (delivery ${row.invocation ?? 'not yet claimed'}); this invocation is no longer its`);
    }
    return { type: 'go' };
  }

  /** Whether `ticket` is the delivery that holds `chain` now (its current generation, claimed). */
  holds(chain: string, ticket: ChainTicket): boolean {
    const row = this.row(chain);
    return !!row && holds(row, ticket);
  }

  /** Whether `generation` is still `chain`'s current one (a dead-lettered message of an older one is moot). */
  isCurrent(chain: string, generation: number): boolean {
    return this.row(chain)?.generation === generation;
  }

  /**
   * Chains to start again: a claimed chain not heard from for `silentMs`, or a message not claimed
   * UNCLAIMED_LOST_MS after it was due. An excluded chain would only be refused again.
   */
  silent(now: number, silentMs: number): string[] {
    return this.rows()
      .filter((r) => !r.excluded && (r.heard === null ? now - r.due_at > UNCLAIMED_LOST_MS : now - r.heard > silentMs))
      .map((r) => r.chain);
  }

  status(target: number, now: number): FleetStatus | undefined {
    const rows = this.rows();
    if (!rows.length) return undefined;
    const chains = rows.map((r) => ({ chain: r.chain, generation: r.generation, restarts: r.restarts, lastHeard: r.heard ?? r.due_at }));
    return {
      target,
      live: rows.filter((r) => r.heard !== null && now - r.heard < CHAIN_LIVE_MS).length,
      restarts: chains.reduce((n, c) => n + c.restarts, 0),
      chains,
    };
  }
}

/** Sends chain messages in batches of at most SEND_BATCH_MAX, grouped by delay. */
export async function sendChains(queue: Queue<ChainMessage>, sends: readonly ChainSend<ChainMessage>[]): Promise<number> {
  let batches = 0;
  for (let i = 0; i < sends.length; i += SEND_BATCH_MAX) {
    await queue.sendBatch(sends.slice(i, i + SEND_BATCH_MAX).map((s) => ({ body: s.message, ...(s.delaySeconds ? { delaySeconds: s.delaySeconds } : {}) })));
    batches++;
  }
  return batches;
}
