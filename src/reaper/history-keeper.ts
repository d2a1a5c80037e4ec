import type { FiredSchedule, HistoryMeter, ReapedLeases } from '../queue/index.ts';
import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';

/** How often the leader samples depths: twice a minute, so that every minute gets a sample. */
export const HISTORY_SAMPLE_INTERVAL_MS_DEFAULT = 30_000;
/** How long the stats history is kept: 7 days. */
export const HISTORY_RETENTION_SECONDS_DEFAULT = 7 * 86_400;
/** Rows deleted per statement when pruning: a leader back after a long absence deletes in steps. */
const PRUNE_BATCH = 10_000;

/** Options for {@link HistoryKeeper}. */
export interface HistoryKeeperOptions extends MaintenanceServiceOptions {
  /** Default {@link HISTORY_RETENTION_SECONDS_DEFAULT}. */
  retentionSeconds?: number;
}

/** What one pass of {@link HistoryKeeper} did. */
export interface HistoryKeeping {
  /** Queues whose depth was sampled. */
  sampled: number;
  /** Rows past the retention deleted. */
  deleted: number;
}

/**
 * The leader's part of the stats history: samples every queue's depth (ready + delayed +
 * leased) and oldest ready age into the current minute (every 30 s, so each minute has one,
 * the later replacing the earlier), deletes minutes older than the retention in bulk, and
 * counts what the maintainer itself does that no engine sees: leases the reaper took back
 * (and dead-lettered) and messages the cron schedules sent, added every few seconds by a
 * meter of its own. Runs while this process leads; its meter flushes until stop().
 */
export class HistoryKeeper extends PeriodicService {
  private readonly options: HistoryKeeperOptions;
  private readonly meter: HistoryMeter;

  constructor(options: HistoryKeeperOptions) {
    super(options.logger, options.intervalMs, 'history pass failed');
    this.options = options;
    this.meter = options.maintenance.historyMeter((error) =>
      options.logger.warn({ err: error }, 'history counts not written'),
    );
  }

  /** Counts leases of one queue that the reaper took back. */
  recordReaped(reaped: ReapedLeases): void {
    this.meter.leasesExpired(reaped.queue, reaped.messages, reaped.deadLetterQueue !== null);
  }

  /** Counts the messages a schedule's ticks sent. */
  recordFired(fired: FiredSchedule): void {
    this.meter.sent(fired.queue, fired.ticks.length);
  }

  /**
   * One pass as of `now` (default: the database clock), whether or not this process leads:
   * the depth sample, then the retention's deletes, batch by batch until none is left.
   */
  async keep(now?: Date): Promise<HistoryKeeping> {
    const { maintenance } = this.options;
    const retention = this.options.retentionSeconds ?? HISTORY_RETENTION_SECONDS_DEFAULT;
    const sampled = await maintenance.sampleQueueHistory(now);
    let deleted = 0;
    for (;;) {
      const batch = await maintenance.deleteQueueHistoryOlderThan(retention, PRUNE_BATCH, now);
      deleted += batch;
      if (batch < PRUNE_BATCH) return { sampled, deleted };
    }
  }

  /** Writes the maintainer's own counts now, instead of at the meter's next flush. */
  flush(): Promise<void> {
    return this.meter.flush();
  }

  override start(): void {
    super.start();
    this.meter.start();
  }

  /** Ends the loop, waits for a pass in progress, and writes the counts not yet written. */
  override async stop(): Promise<void> {
    await super.stop();
    await this.meter.stop();
  }

  protected override async runOnce(): Promise<void> {
    if (!this.options.isLeader()) return;
    const { deleted } = await this.keep();
    if (deleted > 0) this.logger.info({ rows: deleted }, 'history past retention deleted');
  }
}
