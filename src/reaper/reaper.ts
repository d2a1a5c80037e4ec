import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { QueueMaintenance } from '../queue/index.ts';
import type { Executor, FiredSchedule, ReapedLeases, ReplayJob } from '../queue/index.ts';
import { ArchivePartitioner } from './archive-partitioner.ts';
import type { ArchivePartitionChange } from './archive-partitioner.ts';
import { HISTORY_SAMPLE_INTERVAL_MS_DEFAULT, HistoryKeeper } from './history-keeper.ts';
import type { HistoryKeeping } from './history-keeper.ts';
import { Housekeeper } from './housekeeper.ts';
import { LeaderElection } from './leader-election.ts';
import type { PeriodicService } from './periodic-service.ts';
import { LeaseRescuer } from './lease-rescuer.ts';
import { REPLAY_BATCH_SIZE_DEFAULT, ReplayRunner } from './replay-runner.ts';
import { SCHEDULE_INTERVAL_MS_DEFAULT, ScheduleFirer } from './schedule-firer.ts';
import { VACUUM_DEAD_TUPLES_DEFAULT } from './vacuum.ts';
import { VacuumScheduler } from './vacuum-scheduler.ts';

export type { ReapedLeases } from '../queue/index.ts';
export type { ArchivePartitionChange } from './archive-partitioner.ts';
export type { HistoryKeeping } from './history-keeper.ts';

/** How often the leader runs its passes, and standbys try to take over. */
export const REAPER_INTERVAL_MS_DEFAULT = 1_000;
/** Expired leases handled per statement. */
export const REAPER_BATCH_SIZE_DEFAULT = 1_000;
/** How often the slower housekeeping passes (retention, stale rows) run. */
export const HOUSEKEEPING_INTERVAL_MS_DEFAULT = 60_000;
/** How often the leader checks whether the messages table needs a vacuum (vacuum.ts). */
export const VACUUM_CHECK_INTERVAL_MS_DEFAULT = 10_000;

/** How often the leader creates archive partitions ahead and drops expired ones. */
export const ARCHIVE_INTERVAL_MS_DEFAULT = 60_000;
/** How often the leader looks for replay jobs due for a batch. */
export const REPLAY_INTERVAL_MS_DEFAULT = 200;

/** Options for {@link Reaper}. */
export interface ReaperOptions {
  db: Executor;
  /** For the leader-lock session: a direct connection, not a transaction-mode pooler. */
  connectionString: string;
  logger: Logger;
  /** Default {@link REAPER_INTERVAL_MS_DEFAULT}. */
  intervalMs?: number;
  /** Default {@link REAPER_BATCH_SIZE_DEFAULT}. */
  batchSize?: number;
  /** Default {@link HOUSEKEEPING_INTERVAL_MS_DEFAULT}. */
  housekeepingIntervalMs?: number;
  /** Default {@link VACUUM_CHECK_INTERVAL_MS_DEFAULT}. */
  vacuumCheckIntervalMs?: number;
  /** Dead row versions that make the leader vacuum. Default {@link VACUUM_DEAD_TUPLES_DEFAULT}. */
  vacuumDeadTuples?: number;
  /** Default {@link ARCHIVE_INTERVAL_MS_DEFAULT}. */
  archiveIntervalMs?: number;
  /** Default {@link REPLAY_INTERVAL_MS_DEFAULT}. */
  replayIntervalMs?: number;
  /** Archived messages per replay batch. Default {@link REPLAY_BATCH_SIZE_DEFAULT}. */
  replayBatchSize?: number;
  /** Width of one archive partition, in seconds. Default a UTC day (archive-partitioner.ts). */
  archivePartitionSeconds?: number;
  /** How often the leader fires due cron ticks. Default {@link SCHEDULE_INTERVAL_MS_DEFAULT}. */
  scheduleIntervalMs?: number;
  /** Keep the stats history (history-keeper.ts). Default true. */
  history?: boolean;
  /** How often the leader samples depths. Default {@link HISTORY_SAMPLE_INTERVAL_MS_DEFAULT}. */
  historyIntervalMs?: number;
  /** How long the stats history is kept, in seconds. Default 7 days (history-keeper.ts). */
  historyRetentionSeconds?: number;
}

interface ReaperEvents {
  reaped: [ReapedLeases];
  leadership: [leader: boolean];
  /** The leader vacuumed the messages table, which had `deadTuples` dead row versions. */
  vacuumed: [deadTuples: number];
  /** The leader created or dropped archive partitions. */
  archivePartitions: [ArchivePartitionChange];
  /** The leader ran a batch of a replay job; the job as it is after it. */
  replayProgress: [ReplayJob];
  /** The leader fired ticks of a cron schedule. */
  fired: [FiredSchedule];
}

/**
 * The maintainer: one leader election (leader-election.ts) and the services the leader runs,
 * each on its own loop with the same start/stop lifecycle: the lease rescuer (every
 * intervalMs: requeues expired leases with backoff, dead-letters exhausted messages), the
 * housekeeper (every minute: retention, stale waiting-consumer rows, old dequeue counts), the
 * vacuum scheduler (every ten seconds: vacuums the messages table if autovacuum has fallen
 * behind), the archive partitioner (every minute: day partitions of the archive created
 * ahead, expired ones dropped whole), the replay runner (every 200 ms: batches of replay
 * jobs), the schedule firer (every 250 ms: sends the messages of due cron ticks) and, unless
 * the history is off, the history keeper (every 30 s: depths sampled into the stats history,
 * minutes past its retention deleted, expired leases and schedule sends counted). With
 * several processes exactly one leads at a time; a standby takes over
 * within intervalMs of the leader's connection or process dying. Errors are logged per pass
 * and the loops carry on.
 * Lifecycle: start() once, stop() any number of times.
 */
export class Reaper extends EventEmitter<ReaperEvents> {
  private readonly election: LeaderElection;
  private readonly rescuer: LeaseRescuer;
  private readonly housekeeper: Housekeeper;
  private readonly vacuum: VacuumScheduler;
  private readonly archive: ArchivePartitioner;
  private readonly replays: ReplayRunner;
  private readonly schedules: ScheduleFirer;
  /** Undefined when the stats history is off. */
  private readonly history: HistoryKeeper | undefined;

  constructor(options: ReaperOptions) {
    super();
    const logger = options.logger.child({ component: 'reaper' });
    const maintenance = new QueueMaintenance(options.db);
    const intervalMs = options.intervalMs ?? REAPER_INTERVAL_MS_DEFAULT;
    const isLeader = () => this.isLeader;
    this.election = new LeaderElection({
      connectionString: options.connectionString,
      logger,
      intervalMs,
    });
    this.history =
      options.history === false
        ? undefined
        : new HistoryKeeper({
            maintenance,
            logger,
            intervalMs: options.historyIntervalMs ?? HISTORY_SAMPLE_INTERVAL_MS_DEFAULT,
            retentionSeconds: options.historyRetentionSeconds,
            isLeader,
          });
    this.rescuer = new LeaseRescuer({
      maintenance,
      logger,
      intervalMs,
      batchSize: options.batchSize ?? REAPER_BATCH_SIZE_DEFAULT,
      isLeader,
      onReaped: (reaped) => {
        this.history?.recordReaped(reaped);
        this.emit('reaped', reaped);
      },
    });
    this.housekeeper = new Housekeeper({
      maintenance,
      logger,
      intervalMs: options.housekeepingIntervalMs ?? HOUSEKEEPING_INTERVAL_MS_DEFAULT,
      isLeader,
    });
    this.vacuum = new VacuumScheduler({
      maintenance,
      logger,
      intervalMs: options.vacuumCheckIntervalMs ?? VACUUM_CHECK_INTERVAL_MS_DEFAULT,
      deadTuples: options.vacuumDeadTuples ?? VACUUM_DEAD_TUPLES_DEFAULT,
      isLeader,
      onVacuumed: (deadTuples) => this.emit('vacuumed', deadTuples),
    });
    this.archive = new ArchivePartitioner({
      maintenance,
      logger,
      intervalMs: options.archiveIntervalMs ?? ARCHIVE_INTERVAL_MS_DEFAULT,
      partitionSeconds: options.archivePartitionSeconds,
      isLeader,
      onChanged: (change) => this.emit('archivePartitions', change),
    });
    this.replays = new ReplayRunner({
      maintenance,
      logger,
      intervalMs: options.replayIntervalMs ?? REPLAY_INTERVAL_MS_DEFAULT,
      batchSize: options.replayBatchSize ?? REPLAY_BATCH_SIZE_DEFAULT,
      isLeader,
      onProgress: (job) => this.emit('replayProgress', job),
    });
    this.schedules = new ScheduleFirer({
      maintenance,
      logger,
      intervalMs: options.scheduleIntervalMs ?? SCHEDULE_INTERVAL_MS_DEFAULT,
      isLeader,
      onFired: (fired) => {
        this.history?.recordFired(fired);
        this.emit('fired', fired);
      },
    });
    this.election.events.on('leadership', (leader) => {
      this.emit('leadership', leader);
      // A new leader rescues, housekeeps and checks at once, not an interval later.
      if (leader) for (const service of this.services()) service.runNow();
    });
  }

  /** True while this process holds the leader lock. */
  get isLeader(): boolean {
    return this.election.isLeader;
  }

  start(): void {
    this.election.start();
    for (const service of this.services()) service.start();
  }

  /** Stops the services, waits for passes (and a vacuum) in progress, and gives up leadership. */
  async stop(): Promise<void> {
    await Promise.all(this.services().map((service) => service.stop()));
    await this.election.stop();
  }

  /**
   * One pass over expired leases as of `now` (default: the database clock), in batches until
   * none are left. Runs whether or not this process leads; the loop calls it only when it
   * does. Returns what was reaped.
   */
  reapExpiredLeases(now?: Date): Promise<ReapedLeases[]> {
    return this.rescuer.rescue(now);
  }

  /** Deletes expired messages, stale waiting-consumer rows and old dequeue counts. */
  housekeep(now?: Date): Promise<{ expiredMessages: number }> {
    return this.housekeeper.housekeep(now);
  }

  /**
   * Creates the archive's partitions ahead and drops expired ones as of `now` (default: the
   * database clock). Runs whether or not this process leads.
   */
  maintainArchive(now?: Date): Promise<ArchivePartitionChange> {
    return this.archive.maintain(now);
  }

  /**
   * Runs batches of the replay jobs due as of `now` (default: the database clock): with a
   * clock given, one batch of each due job; else until none is due or a second has passed.
   * Runs whether or not this process leads. Returns the batches run.
   */
  runReplays(now?: Date): Promise<number> {
    return this.replays.runDue(now);
  }

  /**
   * One pass over due cron schedules as of `now` (default: the database clock), whether or
   * not this process leads. Returns the schedules that fired ticks.
   */
  fireDueSchedules(now?: Date): Promise<FiredSchedule[]> {
    return this.schedules.fire(now);
  }

  /**
   * One pass of the stats history's keeper as of `now` (default: the database clock): depths
   * sampled, rows past the retention deleted; also writes the maintainer's own counts.
   * Runs whether or not this process leads; nothing when the history is off.
   */
  async keepHistory(now?: Date): Promise<HistoryKeeping> {
    if (this.history === undefined) return { sampled: 0, deleted: 0 };
    await this.history.flush();
    return this.history.keep(now);
  }

  private services(): PeriodicService[] {
    const services: PeriodicService[] = [
      this.rescuer,
      this.housekeeper,
      this.vacuum,
      this.archive,
      this.replays,
      this.schedules,
    ];
    if (this.history !== undefined) services.push(this.history);
    return services;
  }
}
