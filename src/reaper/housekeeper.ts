import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';

/** Dequeue counts older than this no longer feed estimates and are deleted. */
const DEQUEUE_COUNTS_KEEP = '1 hour';
/**
 * Fired cron ticks are kept this long, as a record of what each schedule sent. A tick is never
 * fired twice whether or not its row is kept: the schedule's next tick has moved past it.
 */
const SCHEDULE_TICKS_KEEP = '7 days';

/** Options for {@link Housekeeper}. */
export type HousekeeperOptions = MaintenanceServiceOptions;

/**
 * The slower passes of the leader: deletes messages past their queue's retention,
 * waiting-consumer rows of backends that are gone, dequeue counts older than an hour,
 * per-group rate limit buckets that are full again, and fired cron ticks older than a week.
 */
export class Housekeeper extends PeriodicService {
  private readonly options: HousekeeperOptions;

  constructor(options: HousekeeperOptions) {
    super(options.logger, options.intervalMs);
    this.options = options;
  }

  /** One pass as of `now` (default: the database clock), whether or not this process leads. */
  async housekeep(now?: Date): Promise<{ expiredMessages: number }> {
    const { maintenance } = this.options;
    const expiredMessages = await maintenance.deleteExpiredMessages(now);
    await maintenance.deleteStaleWaitingConsumers();
    await maintenance.deleteDequeueCountsOlderThan(DEQUEUE_COUNTS_KEEP);
    await maintenance.deleteFullGroupBuckets(now);
    await maintenance.deleteScheduleTicksOlderThan(SCHEDULE_TICKS_KEEP);
    return { expiredMessages };
  }

  protected override async runOnce(): Promise<void> {
    if (!this.options.isLeader()) return;
    const { expiredMessages } = await this.housekeep();
    if (expiredMessages > 0)
      this.logger.info({ messages: expiredMessages }, 'expired messages deleted');
  }
}
