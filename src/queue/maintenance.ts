import type { StatementClient } from './sql/index.ts';
import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { toReplayJob } from './replay.ts';
import {
  ArchivePartitionCreateAhead,
  ArchivePartitionDropExpired,
  DequeueCountDeleteOlderThan,
  GroupRateLimitBucketDeleteFull,
  LeaderLockTry,
  MessageDeleteExpired,
  MessageReapExpiredLeases,
  MessageTableVacuum,
  MessageTableVacuumState,
  QueueHistoryDeleteOlderThan,
  QueueHistorySample,
  ReplayJobListDue,
  ReplayJobRunBatch,
  ScheduleTickDeleteOlderThan,
  WaitingConsumerDeleteStale,
} from './sql/index.ts';
import { HistoryMeter } from './history-meter.ts';
import { fireDueSchedules } from './schedules.ts';
import type { FiredSchedule, ScheduleFailure } from './schedules.ts';
import type { ReplayJob } from './types.ts';

/** Expired leases of one queue handled in a pass, and where they went. */
export interface ReapedLeases {
  queue: string;
  /** Set when the messages were dead-lettered there; null when they were requeued. */
  deadLetterQueue: string | null;
  messages: number;
}

/** Dead row versions of the messages table, and whether a vacuum of it is running. */
export interface MessageTableVacuumState {
  deadTuples: number;
  vacuumRunning: boolean;
}

/**
 * The engine's maintenance door: the statements the maintainer's services (src/reaper) run,
 * so that they reach the tables only through the engine's SQL home. Each call is one
 * statement on `db` (the pool); none needs a transaction, and each is safe to run from two
 * processes at once (the row-changing ones lock with SKIP LOCKED or delete idempotently).
 */
export class QueueMaintenance {
  constructor(private readonly db: Executor) {}

  /**
   * One batch of at most `limit` expired leases as of `now` (default: the database clock):
   * requeued with backoff, or dead-lettered once maxAttempts is used. Counts per queue.
   */
  async reapExpiredLeases(limit: number, now?: Date): Promise<ReapedLeases[]> {
    const { rows } = await translated(() =>
      MessageReapExpiredLeases.run(this.db, [limit, now ?? null]),
    );
    return rows.map((row) => ({
      queue: row.queue,
      deadLetterQueue: row.dead_letter_queue,
      messages: row.messages,
    }));
  }

  /** Deletes unleased messages past their queue's retention as of `now`; how many. */
  async deleteExpiredMessages(now?: Date): Promise<number> {
    const result = await translated(() => MessageDeleteExpired.run(this.db, [now ?? null]));
    return Number(result.numAffectedRows ?? 0n);
  }

  /** Deletes waiting-consumer rows of backends that are gone. */
  async deleteStaleWaitingConsumers(): Promise<void> {
    await translated(() => WaitingConsumerDeleteStale.run(this.db, []));
  }

  /** Deletes per-group rate limit buckets that are full again as of `now` (no row is full). */
  async deleteFullGroupBuckets(now?: Date): Promise<void> {
    await translated(() => GroupRateLimitBucketDeleteFull.run(this.db, [now ?? null]));
  }

  /** Deletes dequeue counts older than `keep` (an interval text, e.g. '1 hour'). */
  async deleteDequeueCountsOlderThan(keep: string): Promise<void> {
    await translated(() => DequeueCountDeleteOlderThan.run(this.db, [keep]));
  }

  /**
   * One firing pass over due cron schedules as of `now` (default: the database clock): each
   * due tick sends its message exactly once, however many processes fire at once (see
   * fireDueSchedules in schedules.ts). Schedules whose stored cron could not be evaluated
   * are reported in `failed` and left as they are.
   */
  fireDueSchedules(
    now?: Date,
    limit?: number,
  ): Promise<{ fired: FiredSchedule[]; failed: ScheduleFailure[] }> {
    return fireDueSchedules(this.db, { now, limit });
  }

  /** Deletes fired-tick rows older than `keep` (an interval text, e.g. '7 days'). */
  async deleteScheduleTicksOlderThan(keep: string): Promise<void> {
    await translated(() => ScheduleTickDeleteOlderThan.run(this.db, [keep]));
  }

  /**
   * Samples every queue's depth and oldest ready age into the stats history's row of the
   * minute holding `now` (default: the database clock); how many queues. One pass of the
   * queue_stats view over the messages table.
   */
  async sampleQueueHistory(now?: Date): Promise<number> {
    const result = await translated(() => QueueHistorySample.run(this.db, [now ?? null]));
    return Number(result.numAffectedRows ?? 0n);
  }

  /**
   * Deletes at most `limit` of the stats history's oldest rows, those more than `keepSeconds`
   * before `now` (default: the database clock); how many. Callers repeat it until it
   * deletes fewer than `limit`, so that no one statement deletes days of rows at once.
   */
  async deleteQueueHistoryOlderThan(
    keepSeconds: number,
    limit: number,
    now?: Date,
  ): Promise<number> {
    const result = await translated(() =>
      QueueHistoryDeleteOlderThan.run(this.db, [now ?? null, keepSeconds, limit]),
    );
    return Number(result.numAffectedRows ?? 0n);
  }

  /**
   * A meter adding to the stats history over this maintenance's database, for what the
   * maintainer itself does (leases it takes back, messages its schedules send); the caller
   * starts and stops it.
   */
  historyMeter(onError?: (error: unknown) => void): HistoryMeter {
    return new HistoryMeter(this.db, undefined, onError);
  }

  /** Dead row versions of the messages table, and whether a vacuum of it runs now. */
  async messageTableVacuumState(): Promise<MessageTableVacuumState> {
    const { rows } = await translated(() => MessageTableVacuumState.run(this.db, []));
    return {
      deadTuples: Number(rows[0]?.dead_tuples ?? 0),
      vacuumRunning: rows[0]?.vacuum_running === true,
    };
  }

  /** VACUUM (SKIP_LOCKED) of the messages table; on a pool connection, outside a transaction. */
  async vacuumMessageTable(): Promise<void> {
    await translated(() => MessageTableVacuum.run(this.db, []));
  }

  /**
   * Creates the archive's missing partitions, `widthSeconds` wide (86,400: UTC days),
   * through `ahead` partitions after the one holding `now` (default: the database clock),
   * moving rows that waited in its default partition into theirs. Returns the names
   * created. Serialised among processes by an advisory lock.
   */
  async createArchivePartitions(
    ahead: number,
    widthSeconds: number,
    now?: Date,
  ): Promise<string[]> {
    const { rows } = await translated(() =>
      ArchivePartitionCreateAhead.run(this.db, [ahead, now ?? null, widthSeconds]),
    );
    return rows.map((row) => row.name);
  }

  /**
   * Drops, whole, the archive's day partitions that ended longer ago than the longest
   * archiveSeconds of the queues with rows in them, as of `now`. Never deletes rows one by
   * one. Returns the names dropped.
   */
  async dropExpiredArchivePartitions(now?: Date): Promise<string[]> {
    const { rows } = await translated(() =>
      ArchivePartitionDropExpired.run(this.db, [now ?? null]),
    );
    return rows.map((row) => row.name);
  }

  /** Ids of running replay jobs due for a batch as of `now`, oldest first, `limit` at most. */
  async dueReplayJobs(limit: number, now?: Date): Promise<string[]> {
    const { rows } = await translated(() => ReplayJobListDue.run(this.db, [limit, now ?? null]));
    return rows.map((row) => row.id);
  }

  /**
   * Runs one batch of at most `limit` messages of replay job `id` as of `now`: the copies and
   * the job's cursor commit together (one statement), so a process killed at any point leaves
   * the job where its last batch ended. Returns the job afterwards; undefined when gone.
   */
  async runReplayBatch(id: string, limit: number, now?: Date): Promise<ReplayJob | undefined> {
    const { rows } = await translated(() =>
      ReplayJobRunBatch.run(this.db, [id, limit, now ?? null]),
    );
    return rows[0] === undefined ? undefined : toReplayJob(rows[0]);
  }

  /**
   * Tries to take the session advisory lock `lock` on `session` (a dedicated connection whose
   * end releases it) without waiting; true when taken.
   */
  static async tryLeaderLock(
    session: StatementClient,
    lock: readonly [namespace: number, key: number],
  ): Promise<boolean> {
    const rows = await LeaderLockTry.runOn(session, [lock[0], lock[1]]);
    return rows[0]?.locked === true;
  }
}
