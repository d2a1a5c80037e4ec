import type { Logger } from 'pino';
import { QueueError } from '../queue/index.ts';
import type { QueueEngine, QueueStats } from '../queue/index.ts';
import { pause } from './abortable-iterator.ts';

/** How often a queueStats subscription looks: at most 4 updates a second. */
export const STATS_INTERVAL_MS_DEFAULT = 250;

/** Most queues {@link SharedQueueStats} remembers a look of; older looks go first past it. */
const SHARED_LOOKS_MAX = 1_000;

/**
 * One look at a queue's stats shared by every queueStats subscription of it in this process:
 * a look younger than `maxAgeMs` (or still in flight) is handed to the next subscriber that
 * asks, so a dashboard opened in twenty browsers costs the database about one count a tick,
 * not twenty. A failed look is not kept.
 */
export class SharedQueueStats {
  private readonly looks = new Map<
    string,
    { atMs: number; stats: Promise<QueueStats | undefined> }
  >();

  constructor(
    private readonly engine: Pick<QueueEngine, 'queueStats'>,
    private readonly maxAgeMs = STATS_INTERVAL_MS_DEFAULT / 2,
  ) {}

  /** The queue's stats as of at most `maxAgeMs` ago; undefined when there is no such queue. */
  get(queue: string): Promise<QueueStats | undefined> {
    const now = Date.now();
    const kept = this.looks.get(queue);
    if (kept !== undefined && now - kept.atMs < this.maxAgeMs) return kept.stats;
    const look = { atMs: now, stats: this.engine.queueStats(queue) };
    this.looks.delete(queue);
    this.looks.set(queue, look);
    if (this.looks.size > SHARED_LOOKS_MAX) {
      // Insertion order: the first key is the queue looked at least recently.
      this.looks.delete(this.looks.keys().next().value!);
    }
    look.stats.catch(() => {
      if (this.looks.get(queue) === look) this.looks.delete(queue);
    });
    return look.stats;
  }
}

/** Options of {@link streamQueueStats}. */
export interface StatsStreamOptions {
  engine: QueueEngine;
  /** Where looks come from: shared by the process's subscriptions. */
  stats: SharedQueueStats;
  logger: Logger;
  queue: string;
  /** Time between looks, in ms. Default {@link STATS_INTERVAL_MS_DEFAULT}. */
  intervalMs?: number;
  /**
   * Whether a change of oldestReadyAgeSeconds alone is news: only when the subscriber
   * selected it, else it would get an identical-looking update every second. Default true.
   */
  watchAge?: boolean;
}

/**
 * A queue's stats: the current value at once, then each value that differs from the last
 * one sent (any count, or — when `watchAge` — oldestReadyAgeSeconds by a whole second: the
 * age grows every instant and would otherwise make every look a change). Looks every `intervalMs`, which
 * bounds updates to 1000 / intervalMs per second, however busy the queue.
 *
 * It polls rather than waiting on wake-ups: the counts change on leases and acks, which
 * send no NOTIFY, and holding a wait registration would make every send to the queue pay
 * for a NOTIFY while someone merely watches a dashboard (DESIGN.md: producers are not taxed
 * for consumers that are not idle-waiting). Ends with QUEUE_NOT_FOUND if the queue is deleted.
 */
export async function* streamQueueStats(
  options: StatsStreamOptions,
  signal: AbortSignal,
): AsyncGenerator<QueueStats, void, undefined> {
  const { engine, queue, logger, stats: shared } = options;
  const intervalMs = options.intervalMs ?? STATS_INTERVAL_MS_DEFAULT;
  const watchAge = options.watchAge ?? true;
  let lastSent: string | undefined;
  while (!signal.aborted && !engine.stopping) {
    let stats: QueueStats | undefined;
    try {
      stats = await shared.get(queue);
    } catch (error) {
      if (engine.stopping || signal.aborted) break;
      if (error instanceof QueueError && error.code === 'UNAVAILABLE') {
        logger.warn({ err: error.cause ?? error, queue }, 'queueStats: database unavailable');
        await pause(engine.pollInterval, signal);
        continue;
      }
      throw error;
    }
    if (stats === undefined) {
      throw new QueueError('QUEUE_NOT_FOUND', `queue "${queue}" does not exist (it was deleted)`);
    }
    const key = changeKey(stats, watchAge);
    if (key !== lastSent) {
      lastSent = key;
      yield stats;
    }
    await pause(intervalMs, signal);
  }
}

function changeKey(stats: QueueStats, watchAge: boolean): string {
  const age = stats.oldestReadyAgeSeconds;
  const ageKey = age === null ? '-' : watchAge ? Math.floor(age) : '+';
  return [stats.ready, stats.delayed, stats.leased, stats.total, ageKey].join('/');
}
