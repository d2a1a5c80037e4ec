import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';

/** Partitions of the archive kept ready beyond the current one: acks never wait for a CREATE. */
export const ARCHIVE_PARTITIONS_AHEAD_DEFAULT = 2;
/** Width of one archive partition, in seconds: a UTC day. */
export const ARCHIVE_PARTITION_SECONDS_DEFAULT = 86_400;

/** Options for {@link ArchivePartitioner}. */
export interface ArchivePartitionerOptions extends MaintenanceServiceOptions {
  /** Default {@link ARCHIVE_PARTITIONS_AHEAD_DEFAULT}. */
  partitionsAhead?: number;
  /**
   * Width of one partition, 60 to 604,800 seconds. Default
   * {@link ARCHIVE_PARTITION_SECONDS_DEFAULT}. Narrower partitions free space sooner for
   * queues with a short archiveSeconds, at the price of more tables.
   */
  partitionSeconds?: number;
  /** Told of each pass that created or dropped a partition. */
  onChanged?: (change: ArchivePartitionChange) => void;
}

/** What one pass of {@link ArchivePartitioner} did. */
export interface ArchivePartitionChange {
  created: string[];
  dropped: string[];
}

/**
 * Keeps the archive (partitioned by ack time, one partition per
 * UTC day by default) from ever bloating: creates the current partition and the next ones
 * ahead, and drops whole those older than the longest archiveSeconds of the queues in them. Archived
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
      this.options.partitionsAhead ?? ARCHIVE_PARTITIONS_AHEAD_DEFAULT,
      this.options.partitionSeconds ?? ARCHIVE_PARTITION_SECONDS_DEFAULT,
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
