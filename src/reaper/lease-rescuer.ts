import type { Logger } from 'pino';
import type { QueueMaintenance, ReapedLeases } from '../queue/index.ts';
import { PeriodicService } from './periodic-service.ts';

/** Options for {@link LeaseRescuer}. */
export interface LeaseRescuerOptions {
  maintenance: QueueMaintenance;
  logger: Logger;
  /** How often the leader looks for expired leases, in ms. */
  intervalMs: number;
  /** Expired leases handled per statement. */
  batchSize: number;
  /** Whether this process leads now: only the leader's loop rescues. */
  isLeader: () => boolean;
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
