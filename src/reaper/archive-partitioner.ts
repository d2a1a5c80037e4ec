import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';

/** Day partitions of the archive kept ready beyond today: acks never wait for a CREATE. */
export const ARCHIVE_DAYS_AHEAD_DEFAULT = 2;

/** Options for {@link ArchivePartitioner}. */
export interface ArchivePartitionerOptions extends MaintenanceServiceOptions {
  /** Default {@link ARCHIVE_DAYS_AHEAD_DEFAULT}. */
  daysAhead?: number;
  /** Told of each pass that created or dropped a partition. */
  onChanged?: (change: ArchivePartitionChange) => void;
}

/** What one pass of {@link ArchivePartitioner} did. */
export interface ArchivePartitionChange {
  created: string[];
  dropped: string[];
}

/**
 * Keeps the archive (holdline.message_archive, partitioned by ack time, one partition per
 * UTC day) from ever bloating: creates the partitions of today and the next days ahead, and
 * drops whole those older than the longest archiveSeconds of the queues in them. Archived
 * rows are never DELETEd, so the archive leaves no dead tuples for vacuum to chase; a
 * queue's shorter retention is honoured when reading. Runs while this process leads.
 */
export class ArchivePartitioner extends PeriodicService {
  private readonly options: ArchivePartitionerOptions;

  constructor(options: ArchivePartitionerOptions) {
    super(options.logger, options.intervalMs, 'archive partition pass failed');
    this.options = options;
  }

  /** One pass as of `now` (default: the database clock), whether or not this process leads. */
  async maintain(now?: Date): Promise<ArchivePartitionChange> {
    const { maintenance } = this.options;
    const created = await maintenance.createArchivePartitions(
      this.options.daysAhead ?? ARCHIVE_DAYS_AHEAD_DEFAULT,
      now,
    );
    const dropped = await maintenance.dropExpiredArchivePartitions(now);
    return { created, dropped };
  }

  protected override async runOnce(): Promise<void> {
    if (!this.options.isLeader()) return;
    const change = await this.maintain();
    if (change.created.length === 0 && change.dropped.length === 0) return;
    this.logger.info(change, 'archive partitions changed');
    this.options.onChanged?.(change);
  }
}
