/**
 * The peers holdline is compared with, installed into a bench database: pg-boss and
 * graphile-worker (devDependencies at pinned versions), and the raw-SQL queue that stands
 * for the physical limit. Each is set up the way its own documentation recommends for
 * throughput; the settings are exported so the JSON lines can print them beside the results.
 */
import { createRequire } from 'node:module';
import { Logger, makeWorkerUtils, run, runMigrations } from 'graphile-worker';
import type { WorkerUtils } from 'graphile-worker';
import { sql } from 'kysely';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { createQueue } from '../../src/queue/operations.ts';
import type { BenchDatabase } from './database.ts';

const require = createRequire(import.meta.url);

/** The installed version of a peer, read from its package.json. */
export function peerVersion(name: 'pg-boss' | 'graphile-worker'): string {
  return (require(`${name}/package.json`) as { version: string }).version;
}

/** Both peers' installed versions, for the JSON lines. */
export function peerVersions(): Record<'pg-boss' | 'graphile-worker', string> {
  return { 'pg-boss': peerVersion('pg-boss'), 'graphile-worker': peerVersion('graphile-worker') };
}

/**
 * Sets up every system of a comparison in the bench database: the raw queue table, the
 * holdline queue `queue`, pg-boss's schema with its queue `queue`, graphile-worker's schema.
 */
export async function installAllSystems(bench: BenchDatabase, queue: string): Promise<void> {
  await sql.raw(CREATE_RAW_QUEUE_TABLE).execute(bench.admin);
  await createQueue(bench.admin, { name: queue });
  await installPgBoss(bench.url, queue);
  await installGraphileWorker(bench.url);
}

/**
 * The raw-SQL queue: the smallest table a queue needs (id, payload, lease). Its INSERT,
 * SKIP LOCKED lease and batched DELETE are the physical limit the others are measured
 * against.
 */
export const RAW_QUEUE_TABLE = 'bench_raw_queue';
export const CREATE_RAW_QUEUE_TABLE = `
  CREATE TABLE ${RAW_QUEUE_TABLE} (
    id bigserial PRIMARY KEY,
    payload jsonb NOT NULL,
    lease_expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
  )`;
/** A whole batch in one statement: the payloads as one jsonb[] parameter. */
export const RAW_INSERT_BATCH = `
  INSERT INTO ${RAW_QUEUE_TABLE} (payload) SELECT unnest($1::jsonb[])`;
/**
 * Leases up to $1 rows: walks the primary key in id order, skips rows other consumers hold,
 * and marks the chosen rows leased for 30 s in the same statement.
 */
export const RAW_LEASE = `
  WITH next AS (
    SELECT id FROM ${RAW_QUEUE_TABLE}
    WHERE lease_expires_at IS NULL OR lease_expires_at < now()
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
  )
  UPDATE ${RAW_QUEUE_TABLE} q SET lease_expires_at = now() + interval '30 seconds'
  FROM next WHERE q.id = next.id
  RETURNING q.id, q.payload`;
/** Acks a batch of leased rows in one statement. */
export const RAW_ACK_BATCH = `DELETE FROM ${RAW_QUEUE_TABLE} WHERE id = ANY($1::bigint[])`;
/** The channel the raw queue's wake-ups go out on (bench/latency.ts). */
export const RAW_NOTIFY_CHANNEL = 'bench_raw_queue';
/**
 * One message and its wake-up in one statement, so one round trip: the textbook LISTEN/NOTIFY
 * queue, which NOTIFYs on every send whether anyone waits or not (sent at commit).
 */
export const RAW_INSERT_NOTIFY = `
  WITH sent AS (INSERT INTO ${RAW_QUEUE_TABLE} (payload) VALUES ($1) RETURNING id)
  SELECT pg_notify('${RAW_NOTIFY_CHANNEL}', id::text) FROM sent`;

/** pg-boss's schema in the bench database. */
export const PG_BOSS_SCHEMA = 'pgboss';

/**
 * pg-boss settings: maintenance and cron off (they are background work that holdline's and
 * graphile-worker's runs do not do either), a pool of `max` connections.
 */
export function pgBossOptions(url: string, max: number): PgBoss.ConstructorOptions {
  return {
    connectionString: url,
    schema: PG_BOSS_SCHEMA,
    max,
    application_name: 'holdline-bench-pgboss',
    supervise: false,
    schedule: false,
    migrate: true,
  };
}

/** Installs pg-boss's schema and creates `queue` (v10 needs queues created first). */
export async function installPgBoss(url: string, queue: string): Promise<void> {
  const boss = new PgBoss(pgBossOptions(url, 2));
  boss.on('error', (error) => process.stderr.write(`pg-boss: ${String(error)}\n`));
  await boss.start();
  try {
    await boss.createQueue(queue);
  } finally {
    await boss.stop({ graceful: false, wait: true });
  }
}

/** Empties pg-boss's job tables between runs. */
export const PG_BOSS_RESET = `TRUNCATE ${PG_BOSS_SCHEMA}.job, ${PG_BOSS_SCHEMA}.archive`;
/** Jobs not yet completed (created, retry, active). */
export const PG_BOSS_PENDING = `
  SELECT count(*)::integer AS n FROM ${PG_BOSS_SCHEMA}.job
  WHERE name = $1 AND state IN ('created', 'retry', 'active')`;

/** A graphile-worker logger that prints warnings and errors only. */
export const GRAPHILE_LOGGER = new Logger(() => (level, message) => {
  // LogLevel is a const enum, which isolatedModules cannot import: compare its string values.
  const name: string = level;
  if (name === 'error' || name === 'warning') {
    process.stderr.write(`graphile-worker ${name}: ${message}\n`);
  }
});

/**
 * A pool for graphile-worker that the bench owns and ends. graphile-worker ends a pool it
 * made itself without waiting, after taking its error listener off, so an idle connection
 * still open when the bench drops its database (DROP DATABASE … WITH (FORCE)) raised an
 * unhandled 'error' that killed the script after its table was printed. Given a pool,
 * graphile-worker leaves it alone; the bench ends it before the database goes.
 */
function graphilePool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  const report = (error: Error): void => {
    process.stderr.write(`graphile-worker pool: ${error.message}\n`);
  };
  // Idle clients report through the pool, checked-out ones through themselves; graphile-worker
  // asks for both (https://err.red/wpeh) and warns on every start without them.
  pool.on('error', report);
  pool.on('connect', (client) => client.on('error', report));
  return pool;
}

/**
 * Hands `work` a pool for graphile-worker; the pool is ended when `work` fails, and otherwise
 * belongs to what `work` returns, which must end it.
 */
async function withGraphilePool<T>(
  url: string,
  max: number,
  work: (pgPool: pg.Pool) => Promise<T>,
): Promise<T> {
  const pgPool = graphilePool(url, max);
  try {
    return await work(pgPool);
  } catch (error) {
    await pgPool.end();
    throw error;
  }
}

/** Installs graphile-worker's schema (its own migrations). */
export function installGraphileWorker(url: string): Promise<void> {
  return withGraphilePool(url, 1, async (pgPool) => {
    await runMigrations({ pgPool, logger: GRAPHILE_LOGGER });
    await pgPool.end();
  });
}

/**
 * graphile-worker's utilities (addJobs) over a pool of `maxPoolSize` connections; release()
 * also ends the pool.
 */
export function graphileWorkerUtils(url: string, maxPoolSize: number): Promise<WorkerUtils> {
  return withGraphilePool(url, maxPoolSize, async (pgPool) => {
    const utils = await makeWorkerUtils({ pgPool, logger: GRAPHILE_LOGGER });
    return {
      ...utils,
      release: async () => {
        await utils.release();
        await pgPool.end();
      },
    };
  });
}

/** The runner settings a bench gives graphile-worker's run(). */
export interface GraphileRunSettings {
  concurrency: number;
  maxPoolSize: number;
  /** Jobs fetched and locked per batch (preset.worker.localQueue.size); undefined: off. */
  localQueueSize?: number;
  /** ms to wait for other completions to batch with; -1 (the default): none. */
  completeJobBatchDelay: number;
  failJobBatchDelay: number;
}

/**
 * graphile-worker's runner settings for throughput, from its Performance page
 * (worker.graphile.org/docs/performance): 24 concurrent jobs on a pool of 25, a local queue
 * of 500 jobs fetched per batch, job completions batched (delay 0). LISTEN/NOTIFY is on by
 * default; pollInterval stays at its default (2 s; it only matters for future jobs).
 */
export const GRAPHILE_RUN_SETTINGS = {
  concurrency: 24,
  maxPoolSize: 25,
  localQueueSize: 500,
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
} as const satisfies GraphileRunSettings;

/** A graphile-worker runner started by {@link runGraphileWorker}. */
export interface GraphileRunner {
  /** Stops the runner, then ends its pool. */
  stop(): Promise<void>;
}

/**
 * Starts graphile-worker's run() with `settings` and one task named `task`, which calls
 * `handler`, over a pool of settings.maxPoolSize connections that stop() ends.
 */
export function runGraphileWorker(
  url: string,
  task: string,
  handler: (payload: unknown) => void,
  settings: GraphileRunSettings = GRAPHILE_RUN_SETTINGS,
): Promise<GraphileRunner> {
  return withGraphilePool(url, settings.maxPoolSize, async (pgPool) => {
    const runner = await run({
      pgPool,
      concurrency: settings.concurrency,
      noHandleSignals: true,
      logger: GRAPHILE_LOGGER,
      taskList: { [task]: (payload) => handler(payload) },
      preset: {
        worker: {
          ...(settings.localQueueSize === undefined
            ? {}
            : { localQueue: { size: settings.localQueueSize } }),
          completeJobBatchDelay: settings.completeJobBatchDelay,
          failJobBatchDelay: settings.failJobBatchDelay,
        },
      },
    });
    return {
      stop: async () => {
        await runner.stop();
        await pgPool.end();
      },
    };
  });
}

/** Empties graphile-worker's job tables between runs. */
export const GRAPHILE_RESET =
  'TRUNCATE graphile_worker._private_jobs, graphile_worker._private_job_queues';
/** Jobs still in graphile-worker's table (completed jobs are deleted). */
export const GRAPHILE_PENDING = 'SELECT count(*)::integer AS n FROM graphile_worker._private_jobs';
