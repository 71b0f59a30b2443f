// The local cluster's Cloudflare profile (`edgetrain start --profile cloudflare`): the two scripts as
// deployed, plus what Cloudflare imposes and Miniflare alone does not. Consumer invocations run in
// parallel, one gradient-script process each (max_concurrency); each has the deployed invocation
// budget; a failed delivery is retried after retry_delay, then dead-lettered to the API script; an
// invocation is killed at the consumer wall-clock limit; run creation checks the Workers memory
// budget; and the coordinator supervises its fleet of chains through the work queue. The settings are
// read from the wrangler configs (deployed-config.ts).
import { deployedSettings, type DeployedSettings } from './deployed-config';
import { startConsumerProcess, startCoordinator, type ConsumerProcess, type LocalCoordinator } from './local';
import { QueueBroker, deliverTo, type QueuedMessage } from './queue-broker';

/** Cloudflare Queues: a consumer invocation runs at most 15 minutes of wall clock (https://developers.cloudflare.com/queues/platform/limits/). */
export const CONSUMER_WALL_LIMIT_MS = 15 * 60_000;
const QUEUE = 'edgetrain-work';
const DEAD_LETTERS = 'edgetrain-work-dlq';

export interface CloudflareProfileOptions {
  /** Consumer processes: the queue's max_concurrency here. */
  readonly workers: number;
  readonly persistDir?: string;
  readonly port?: number;
  readonly token?: string;
  readonly assets?: string;
  readonly verbose?: boolean;
  /** Called when the API's workerd process exits on its own (see startCoordinator). */
  readonly onExit?: () => void;
  /** Deployed settings to change (tests shorten the retry delay). */
  readonly settings?: Partial<DeployedSettings>;
  readonly log?: (line: string) => void;
}

export interface CloudflareCluster {
  readonly coordinator: LocalCoordinator;
  readonly broker: QueueBroker<ConsumerProcess>;
  readonly settings: DeployedSettings;
  /** The consumer processes now in service. */
  readonly processes: readonly ConsumerProcess[];
  /** Kills a consumer process (its invocation in flight dies with it) and starts a fresh one in its place. */
  kill(process: ConsumerProcess): Promise<void>;
  dispose(): Promise<void>;
}

export async function startCloudflareProfile(o: CloudflareProfileOptions): Promise<CloudflareCluster> {
  const settings: DeployedSettings = { ...deployedSettings(), ...o.settings };
  let coordinator: LocalCoordinator | undefined;
  const processes: ConsumerProcess[] = [];
  let index = 0;
  const start = async (): Promise<ConsumerProcess> => {
    const p = await startConsumerProcess({ index: index++, apiUrl: coordinator!.url, budgetMs: settings.budgetMs, verbose: o.verbose });
    processes.push(p);
    broker.addSlot(p);
    return p;
  };
  const replace = async (p: ConsumerProcess) => {
    broker.removeSlot(p);
    processes.splice(processes.indexOf(p), 1);
    await p.dispose().catch(() => undefined);
    await start();
  };
  const broker: QueueBroker<ConsumerProcess> = new QueueBroker<ConsumerProcess>({
    queue: QUEUE,
    maxRetries: settings.maxRetries,
    retryDelayS: settings.retryDelayS,
    wallLimitMs: CONSUMER_WALL_LIMIT_MS,
    onOverrun: replace,
    deadLetter: async (m: QueuedMessage) => void (await deliverTo(await coordinator!.mf.getWorker('edgetrain'), DEAD_LETTERS, m)),
    log: o.log,
  });
  coordinator = await startCoordinator({
    persistDir: o.persistDir,
    port: o.port,
    token: o.token,
    assets: o.assets,
    verbose: o.verbose,
    onExit: o.onExit,
    workQueue: { relay: broker.receive, maxConcurrency: o.workers },
    workerMemoryMb: settings.workerMemoryMb,
  });
  try {
    for (let i = 0; i < o.workers; i++) await start();
  } catch (e) {
    broker.close();
    for (const p of processes) await p.dispose().catch(() => undefined);
    await coordinator.dispose();
    throw e;
  }
  return {
    coordinator,
    broker,
    settings,
    processes,
    kill: replace,
    async dispose() {
      broker.close();
      for (const p of processes) await p.dispose().catch(() => undefined);
      await coordinator!.dispose();
    },
  };
}
