import type { Queue, QueueConfig, QueueStats, WaitingCounts } from '../../queue/index.ts';
import type { GraphQLContext } from '../context.ts';

/** Where a Queue that came from a list finds the stats of all queues, loaded once. */
const SHARED_STATS = Symbol('sharedStats');

/** A Queue as resolvers return it: the engine's, maybe with a shared stats loader. */
export type QueueParent = Queue & { [SHARED_STATS]?: () => Promise<QueueStats[]> };

/**
 * Lets the queues of one list share one stats statement: `queues { stats }` costs one
 * query instead of one per queue, and nothing when stats are not asked for.
 */
export function withSharedStats(queues: Queue[], load: () => Promise<QueueStats[]>): QueueParent[] {
  let loaded: Promise<QueueStats[]> | undefined;
  const once = (): Promise<QueueStats[]> => (loaded ??= load());
  return queues.map((queue) => ({ ...queue, [SHARED_STATS]: once }));
}

/** Stats of a queue with no messages (or one deleted while the request ran). */
function emptyStats(queue: string): QueueStats {
  return { queue, ready: 0, delayed: 0, leased: 0, total: 0, oldestReadyAgeSeconds: null };
}

/** Field resolvers of type Queue. */
export const QueueResolvers = {
  /** Counted when asked, not with the queue: it is the costly part. */
  async stats(queue: QueueParent, _args: unknown, ctx: GraphQLContext): Promise<QueueStats> {
    const shared = queue[SHARED_STATS];
    const stats =
      shared === undefined
        ? await ctx.engine.queueStats(queue.name)
        : (await shared()).find((s) => s.queue === queue.name);
    return stats ?? emptyStats(queue.name);
  },
  /** One statement per queue; fine for the few queues a deployment has. */
  bindings(queue: QueueParent, _args: unknown, ctx: GraphQLContext): Promise<string[]> {
    return ctx.engine.listBindings(queue.name);
  },
};

/** Field resolvers of type QueueStats. */
export const QueueStatsResolvers = {
  /** A statement of its own, run only when asked (see holdline.queue_waiting). */
  async waiting(stats: QueueStats, _args: unknown, ctx: GraphQLContext): Promise<WaitingCounts> {
    return (
      (await ctx.engine.waitingCounts(stats.queue)) ?? {
        queue: stats.queue,
        ready: 0,
        delayed: 0,
        backingOff: 0,
        groupHeadInFlight: 0,
        queuePaused: 0,
        concurrencyCap: 0,
        rateLimited: 0,
        leased: 0,
        maxInFlight: null,
      }
    );
  },
};

/** Field resolvers of type QueueConfig: the API drops the engine's `Seconds` suffix here only. */
export const QueueConfigResolvers = {
  visibilityTimeout: (config: QueueConfig): number => config.visibilityTimeoutSeconds,
};
