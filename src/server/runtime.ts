import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import { Listener } from '../db/listener.ts';
import { pendingMigrations } from '../db/migrator.ts';
import { createDatabase, createPool } from '../db/pool.ts';
import { QueueEngine, WAKEUP_CHANNEL } from '../queue/index.ts';
import { Reaper } from '../reaper/reaper.ts';
import { createMetrics } from './metrics.ts';
import type { Metrics } from './metrics.ts';

/** Options of {@link createRuntime}. */
export interface RuntimeOptions {
  logger: Logger;
  /** PostgreSQL holding the holdline schema; a pool of `poolMax` is made over it. */
  databaseUrl?: string;
  /**
   * A caller's pg Pool to run on instead (the in-process client's `pool` option): it stays
   * the caller's, so stop() does not end it.
   */
  pool?: pg.Pool;
  /** Size of the pool made from databaseUrl. Default: the pool module's default (10). */
  poolMax?: number;
  /** application_name of the pool's connections. */
  applicationName?: string;
  /** Hot statements as named prepared statements (see src/db/prepared-statements.ts). Default true. */
  preparedStatements?: boolean;
  /**
   * A direct connection (not a transaction-mode pooler) for the LISTEN connection and the
   * reaper's leader lock. Without it there is no listener (long polls rely on the poll
   * interval and this process's own commits) and no reaper.
   */
  listenDatabaseUrl?: string;
  /** How often idle long polls look again without a wake-up, in ms. Default 1000. */
  pollIntervalMs?: number;
  /**
   * Run the maintainer (src/reaper): needs listenDatabaseUrl. false: none. Default: none.
   * Only one process leads at a time, so it is safe in every process.
   */
  reaper?:
    | false
    | { intervalMs?: number; archivePartitionSeconds?: number; historyRetentionSeconds?: number };
  /**
   * Count what the engine does for the stats history, and let the reaper's leader keep it
   * (sample depths, delete past the retention). Default true.
   */
  history?: boolean;
  /** Build the Prometheus metrics (src/server/metrics.ts) over the engine and reaper. */
  metrics?: boolean;
}

/**
 * Everything a process runs Holdline with: pool, LISTEN connection, engine, maintainer and
 * metrics. Nothing connects until start(); stop() ends what this made.
 */
export interface Runtime {
  /** The Kysely over the pool: for the migrator, the auth module and callers' own queries. */
  readonly db: Kysely<Database>;
  readonly engine: QueueEngine;
  readonly reaper: Reaper | undefined;
  readonly metrics: Metrics | undefined;
  /** Connects the listener and starts the engine and the reaper. */
  start(): Promise<void>;
  /**
   * Stops new leases: the reaper resigns, the engine's waits end and later receives return
   * nothing. The pool stays open for requests still in flight. Safe to call twice.
   */
  quiesce(): Promise<void>;
  /** quiesce(), then closes the listener and the pool (unless it is the caller's). Safe twice. */
  stop(): Promise<void>;
  /** True when the database answers and no migration is pending (readiness). */
  ready(): Promise<boolean>;
}

/**
 * The one composition root: builds the pool (or takes the caller's), the LISTEN connection,
 * the engine, the maintainer and the metrics, for the service (server/app.ts), the
 * in-process client (server/in-process.ts) and the CLI (cli.ts) alike. Everything else
 * receives what it needs from here as arguments.
 */
export function createRuntime(options: RuntimeOptions): Runtime {
  const { logger } = options;
  const ownPool = options.pool === undefined;
  if (ownPool && options.databaseUrl === undefined) {
    throw new Error('createRuntime needs databaseUrl or pool');
  }
  const pool =
    options.pool ??
    createPool({
      connectionString: options.databaseUrl!,
      max: options.poolMax,
      applicationName: options.applicationName,
    });
  const db = createDatabase(pool, { preparedStatements: options.preparedStatements });
  const listener =
    options.listenDatabaseUrl === undefined
      ? undefined
      : new Listener({
          connectionString: options.listenDatabaseUrl,
          channel: WAKEUP_CHANNEL,
          logger: logger.child({ component: 'listener' }),
        });
  const engine = new QueueEngine({
    db,
    listener,
    logger,
    pollIntervalMs: options.pollIntervalMs,
    history: options.history,
  });
  const reaper =
    options.reaper === undefined ||
    options.reaper === false ||
    options.listenDatabaseUrl === undefined
      ? undefined
      : new Reaper({
          db,
          connectionString: options.listenDatabaseUrl,
          logger,
          intervalMs: options.reaper.intervalMs,
          archivePartitionSeconds: options.reaper.archivePartitionSeconds,
          history: options.history,
          historyRetentionSeconds: options.reaper.historyRetentionSeconds,
        });
  const metrics = options.metrics === true ? createMetrics(engine, reaper) : undefined;

  let quiescing: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  const quiesce = (): Promise<void> =>
    (quiescing ??= (async () => {
      await reaper?.stop();
      await engine.stop();
    })());

  return {
    db,
    engine,
    reaper,
    metrics,
    async start() {
      try {
        await listener?.start();
      } catch (error) {
        if (ownPool) await db.destroy();
        throw error;
      }
      engine.start();
      reaper?.start();
    },
    quiesce,
    stop() {
      stopping ??= (async () => {
        await quiesce();
        await listener?.stop();
        // A Kysely over the caller's pool would end it on destroy: it is theirs to end.
        if (ownPool) await db.destroy();
      })();
      return stopping;
    },
    async ready() {
      try {
        await engine.ping();
        return (await pendingMigrations(db)).length === 0;
      } catch {
        return false;
      }
    },
  };
}
