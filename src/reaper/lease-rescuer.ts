import type { ReapedLeases } from '../queue/index.ts';
import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';

/** Options for {@link LeaseRescuer}. */
export interface LeaseRescuerOptions extends MaintenanceServiceOptions {
  /** Expired leases handled per statement. */
  batchSize: number;
  /** Told of each queue's rescued leases. */
  onReaped: (reaped: ReapedLeases) => void;
}

/**
 * Requeues expired leases (with the queue's backoff) and dead-letters messages that have
 * used maxAttempts: the messages of a crashed consumer are delivered again. Runs every
 * intervalMs while this process leads; two leaders for an instant would still be safe (the
 * statement locks rows with SKIP LOCKED).
 */
export class LeaseRescuer extends PeriodicService {
  private readonly options: LeaseRescuerOptions;

  constructor(options: LeaseRescuerOptions) {
    super(options.logger, options.intervalMs);
    this.options = options;
  }

  /**
   * One pass over expired leases as of `now` (default: the database clock), in batches until
   * none are left, whether or not this process leads. Returns what was rescued.
   */
  async rescue(now?: Date): Promise<ReapedLeases[]> {
    const { maintenance, batchSize, onReaped } = this.options;
    const reaped: ReapedLeases[] = [];
    for (;;) {
      const batch = await maintenance.reapExpiredLeases(batchSize, now);
      let total = 0;
      for (const entry of batch) {
        reaped.push(entry);
        total += entry.messages;
        onReaped(entry);
      }
      if (total < batchSize) return reaped;
    }
  }

  protected override async runOnce(): Promise<void> {
    if (!this.options.isLeader()) return;
    for (const r of await this.rescue()) {
      this.logger.info(
        { queue: r.queue, deadLetterQueue: r.deadLetterQueue, messages: r.messages },
        r.deadLetterQueue === null ? 'expired leases requeued' : 'expired leases dead-lettered',
      );
    }
  }
}
