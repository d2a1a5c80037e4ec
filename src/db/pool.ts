import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './database.ts';

/** Options for {@link createPool}. */
export interface PoolOptions {
  connectionString: string;
  /** Most connections the pool opens. Default {@link POOL_MAX_DEFAULT}. */
  max?: number;
  /** Name shown in pg_stat_activity.application_name. Default 'holdline'. */
  applicationName?: string;
}

export const POOL_MAX_DEFAULT = 10;

/**
 * A pg pool for the query path. It keeps no session state (no LISTEN, no session advisory
 * locks, no server-side prepared statements), so it may sit behind PgBouncer in
 * transaction mode. Idle connections that error (a terminated backend) are dropped by pg
 * and replaced on next use; the error is swallowed here so it cannot crash the process.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? POOL_MAX_DEFAULT,
    application_name: options.applicationName ?? 'holdline',
  });
  pool.on('error', () => {
    // An idle client lost its connection; pg has removed it from the pool already.
  });
  return pool;
}

/** Wraps a pool in a Kysely instance. Destroying the Kysely instance ends the pool. */
export function createDatabase(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
