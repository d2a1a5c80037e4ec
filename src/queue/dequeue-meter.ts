import type { Executor } from './executor.ts';
import { PeriodicFlush } from './periodic-flush.ts';
import { DequeueCountAddMany } from './sql/index.ts';

/** How often counted deliveries are written to the dequeue counts (sql/dequeue-count.ts). */
export const DEQUEUE_FLUSH_INTERVAL_MS_DEFAULT = 5_000;

/**
 * Counts deliveries per queue in memory and adds them to the dequeue counts (sql/dequeue-count.ts) every few
 * seconds, the source of estimated waits. Counting on the receive path would make every
 * receiver of a queue update one row; this costs one upsert per flush instead. Counts of a
 * crashed process since its last flush are lost: they only feed an estimate.
 */
export class DequeueMeter extends PeriodicFlush {
  private counts = new Map<string, number>();

  constructor(
    private readonly db: Executor,
    intervalMs = DEQUEUE_FLUSH_INTERVAL_MS_DEFAULT,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    super(intervalMs);
  }

  /** Counts `deliveries` just leased from `queue`. */
  record(queue: string, deliveries: number): void {
    if (deliveries > 0) this.counts.set(queue, (this.counts.get(queue) ?? 0) + deliveries);
  }

  /** Failures go to onError and the counts are kept for the next write. */
  protected override async write(): Promise<void> {
    if (this.counts.size === 0) return;
    const counts = this.counts;
    this.counts = new Map();
    try {
      await DequeueCountAddMany.run(this.db, [[...counts.keys()], [...counts.values()]]);
    } catch (error) {
      for (const [queue, n] of counts) this.record(queue, n);
      this.onError(error);
    }
  }
}
