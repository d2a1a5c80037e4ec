import type { FiredSchedule } from '../queue/index.ts';
import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';

/**
 * How often the leader looks for due cron ticks. A tick fires within about this long of its
 * time; the look is one probe of a small index.
 */
export const SCHEDULE_INTERVAL_MS_DEFAULT = 250;

/** Options for {@link ScheduleFirer}. */
export interface ScheduleFirerOptions extends MaintenanceServiceOptions {
  /** Told of each schedule that fired ticks. */
  onFired: (fired: FiredSchedule) => void;
}

/**
 * Fires due cron schedules (createSchedule): each tick sends one message into the
 * schedule's queue. Runs every intervalMs while this process leads. Exactly once per tick
 * even with two leaders for an instant, or a leader that died mid-pass: a tick is fired in
 * one statement, only while the schedule still waits for it, and under a unique (schedule,
 * tick) key. Ticks missed while no leader ran follow each schedule's catchUp.
 */
export class ScheduleFirer extends PeriodicService {
  private readonly options: ScheduleFirerOptions;

  constructor(options: ScheduleFirerOptions) {
    super(options.logger, options.intervalMs, 'schedule pass failed');
    this.options = options;
  }

  /** One pass as of `now` (default: the database clock), whether or not this process leads. */
  async fire(now?: Date): Promise<FiredSchedule[]> {
    const { fired, failed } = await this.options.maintenance.fireDueSchedules(now);
    for (const f of failed) {
      this.logger.error({ err: f.error, schedule: f.schedule }, 'schedule not evaluated');
    }
    for (const f of fired) this.options.onFired(f);
    return fired;
  }

  protected override async runOnce(): Promise<void> {
    if (!this.options.isLeader()) return;
    for (const f of await this.fire()) {
      this.logger.debug({ schedule: f.schedule, ticks: f.ticks.length }, 'schedule fired');
    }
  }
}
