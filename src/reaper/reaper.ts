import { EventEmitter } from 'node:events';
import { sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Executor } from '../queue/index.ts';
import { VACUUM_DEAD_TUPLES_DEFAULT, vacuumMessagesIfBehind } from './vacuum.ts';

/** How often the leader runs its passes, and standbys try to take over. */
export const REAPER_INTERVAL_MS_DEFAULT = 1_000;
/** Expired leases handled per statement. */
export const REAPER_BATCH_SIZE_DEFAULT = 1_000;
/** How often the slower housekeeping passes (retention, stale rows) run. */
export const HOUSEKEEPING_INTERVAL_MS_DEFAULT = 60_000;
/** How often the leader checks whether holdline.messages needs a vacuum (vacuum.ts). */
export const VACUUM_CHECK_INTERVAL_MS_DEFAULT = 10_000;
/** Advisory lock of the leader: namespace 'HLQU', key 1. */
const LEADER_LOCK = [1212961868, 1] as const;
/** Dequeue counts older than this no longer feed estimates and are deleted. */
const DEQUEUE_COUNTS_KEEP = '1 hour';

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
}

/** Expired leases of one queue handled in a pass, and where they went. */
export interface ReapedLeases {
  queue: string;
  /** Set when the messages were dead-lettered there; null when they were requeued. */
  deadLetterQueue: string | null;
  messages: number;
}

interface ReaperEvents {
  reaped: [ReapedLeases];
  leadership: [leader: boolean];
  /** The leader vacuumed holdline.messages, which had `deadTuples` dead row versions. */
  vacuumed: [deadTuples: number];
}

/**
 * Requeues expired leases (with the queue's backoff) and dead-letters exhausted messages;
 * every minute it also deletes messages past retention, waiting-consumer rows of backends
 * that are gone, and old dequeue counts, and every ten seconds it vacuums holdline.messages
 * if autovacuum has fallen behind (vacuum.ts), in the background of the passes. With several processes, exactly one leads at a
 * time: leadership is a session advisory lock on a dedicated connection, so it is released
 * the moment the leader's connection or process dies, and a standby takes over at its next
 * tick (within intervalMs). Two leaders for an instant would still be safe: the passes lock
 * rows with SKIP LOCKED. Errors are logged per tick and the loop carries on.
 * Lifecycle: start() once, stop() any number of times.
 */
export class Reaper extends EventEmitter<ReaperEvents> {
  private lockClient: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private lastHousekeeping = 0;
  private lastVacuumCheck = 0;
  private vacuuming: Promise<void> | undefined;
  private readonly intervalMs: number;
  private readonly batchSize: number;
  private readonly housekeepingIntervalMs: number;
  private readonly vacuumCheckIntervalMs: number;
  private readonly vacuumDeadTuples: number;
  private readonly logger: Logger;

  constructor(private readonly options: ReaperOptions) {
    super();
    this.intervalMs = options.intervalMs ?? REAPER_INTERVAL_MS_DEFAULT;
    this.batchSize = options.batchSize ?? REAPER_BATCH_SIZE_DEFAULT;
    this.housekeepingIntervalMs =
      options.housekeepingIntervalMs ?? HOUSEKEEPING_INTERVAL_MS_DEFAULT;
    this.vacuumCheckIntervalMs = options.vacuumCheckIntervalMs ?? VACUUM_CHECK_INTERVAL_MS_DEFAULT;
    this.vacuumDeadTuples = options.vacuumDeadTuples ?? VACUUM_DEAD_TUPLES_DEFAULT;
    this.logger = options.logger.child({ component: 'reaper' });
  }

  /** True while this process holds the leader lock. */
  get isLeader(): boolean {
    return this.lockClient !== undefined;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops the loop, waits for a pass (and a vacuum) in progress, and gives up leadership. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.vacuuming;
    await this.resign();
  }

  /**
   * One pass over expired leases as of `now` (default: the database clock), in batches until
   * none are left. Runs whether or not this process leads; the loop calls it only when it
   * does. Returns what was reaped.
   */
  async reapExpiredLeases(now?: Date): Promise<ReapedLeases[]> {
    const reaped: ReapedLeases[] = [];
    for (;;) {
      const { rows } = await sql<{
        queue: string;
        dead_letter_queue: string | null;
        messages: number;
      }>`
        SELECT * FROM holdline.reap_expired_leases(${this.batchSize}::integer, ${now ?? null}::timestamptz)
      `.execute(this.options.db);
      let total = 0;
      for (const row of rows) {
        const entry = {
          queue: row.queue,
          deadLetterQueue: row.dead_letter_queue,
          messages: row.messages,
        };
        reaped.push(entry);
        total += row.messages;
        this.emit('reaped', entry);
      }
      if (total < this.batchSize) return reaped;
    }
  }

  /** Deletes expired messages, stale waiting-consumer rows and old dequeue counts. */
  async housekeep(now?: Date): Promise<{ expiredMessages: number }> {
    const db = this.options.db;
    const expired = await sql`
      DELETE FROM holdline.messages m
      USING holdline.queues q
      WHERE q.name = m.queue AND m.lease_token IS NULL
        AND m.created_at < coalesce(${now ?? null}::timestamptz, now()) - make_interval(secs => q.retention_seconds)
    `.execute(db);
    await sql`
      DELETE FROM holdline.waiting_consumers w
      WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.listener_pid)
    `.execute(db);
    await sql`
      DELETE FROM holdline.dequeue_counts WHERE minute < now() - ${DEQUEUE_COUNTS_KEEP}::interval
    `.execute(db);
    return { expiredMessages: Number(expired.numAffectedRows ?? 0n) };
  }

  /** Vacuums holdline.messages when autovacuum has fallen behind; never throws. */
  private async vacuumIfBehind(): Promise<void> {
    try {
      const check = await vacuumMessagesIfBehind(this.options.db, this.vacuumDeadTuples);
      if (!check.vacuumed) return;
      this.logger.info({ deadTuples: check.deadTuples }, 'holdline.messages vacuumed');
      this.emit('vacuumed', check.deadTuples);
    } catch (error) {
      this.logger.error({ err: error }, 'vacuum of holdline.messages failed');
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule(this.intervalMs);
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    try {
      if (!(await this.lead())) return;
      const reaped = await this.reapExpiredLeases();
      for (const r of reaped) {
        this.logger.info(
          { queue: r.queue, deadLetterQueue: r.deadLetterQueue, messages: r.messages },
          r.deadLetterQueue === null ? 'expired leases requeued' : 'expired leases dead-lettered',
        );
      }
      if (Date.now() - this.lastHousekeeping >= this.housekeepingIntervalMs) {
        this.lastHousekeeping = Date.now();
        const { expiredMessages } = await this.housekeep();
        if (expiredMessages > 0)
          this.logger.info({ messages: expiredMessages }, 'expired messages deleted');
      }
      if (
        this.vacuuming === undefined &&
        Date.now() - this.lastVacuumCheck >= this.vacuumCheckIntervalMs
      ) {
        this.lastVacuumCheck = Date.now();
        // Not awaited: a vacuum takes seconds on a big table, and leases keep expiring.
        this.vacuuming = this.vacuumIfBehind().finally(() => (this.vacuuming = undefined));
      }
    } catch (error) {
      this.logger.error({ err: error }, 'reaper pass failed');
    }
  }

  /** Holds or tries to take the leader lock; true when this process leads. */
  private async lead(): Promise<boolean> {
    if (this.lockClient !== undefined) return true;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: 'holdline-reaper',
    });
    client.on('error', () => this.lostLock(client));
    client.on('end', () => this.lostLock(client));
    try {
      await client.connect();
      const { rows } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1::int, $2::int) AS locked',
        [...LEADER_LOCK],
      );
      if (rows[0]?.locked !== true || this.stopped) {
        client.removeAllListeners('end');
        await client.end();
        return false;
      }
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw error;
    }
    this.lockClient = client;
    this.logger.info('reaper leadership taken');
    this.emit('leadership', true);
    return true;
  }

  private lostLock(client: pg.Client): void {
    if (this.lockClient !== client) return;
    this.lockClient = undefined;
    client.end().catch(() => undefined);
    this.logger.warn('reaper leadership lost with its connection');
    this.emit('leadership', false);
  }

  private async resign(): Promise<void> {
    const client = this.lockClient;
    if (client === undefined) return;
    this.lockClient = undefined;
    client.removeAllListeners('end');
    // Ending the session releases the lock.
    await client.end().catch(() => undefined);
    this.emit('leadership', false);
  }
}
