import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './database.ts';
import { preparingPool } from './prepared-statements.ts';
import { poolTypeParsers } from './type-parsers.ts';

/** Options for {@link createPool}. */
export interface PoolOptions {
  connectionString: string;
  /** Most connections the pool opens. Default {@link POOL_MAX_DEFAULT}. */
  max?: number;
  /** Name shown in pg_stat_activity.application_name. Default 'holdline'. */
  applicationName?: string;
  /**
   * Longest wait for a connection (a new one, or a free one of a full pool) before the
   * statement fails with a connection error. Default {@link CONNECTION_TIMEOUT_MS_DEFAULT}.
   */
  connectionTimeoutMs?: number;
}

export const POOL_MAX_DEFAULT = 10;
/**
 * Without a bound, a request to a database host that does not answer (down behind a
 * firewall, mid-failover) waits for the OS's TCP connect timeout, minutes; with it, the
 * caller gets the retryable UNAVAILABLE instead of a hang. A PostgreSQL that is merely
 * restarting refuses or answers 57P03 at once and never reaches this bound.
 */
export const CONNECTION_TIMEOUT_MS_DEFAULT = 10_000;

/**
 * A pg pool for the query path. It keeps no session state (no LISTEN, no session advisory
 * locks) other than the engine's prepared statements, which {@link createDatabase} can leave
 * out, so it may sit behind PgBouncer in transaction mode. Idle connections that error (a
 * terminated backend) are dropped by pg and replaced on next use; the error is swallowed
 * here so it cannot crash the process.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? POOL_MAX_DEFAULT,
    application_name: options.applicationName ?? 'holdline',
    connectionTimeoutMillis: options.connectionTimeoutMs ?? CONNECTION_TIMEOUT_MS_DEFAULT,
    types: poolTypeParsers(),
  });
  pool.on('error', () => {
    // An idle client lost its connection; pg has removed it from the pool already.
  });
  pool.on('connect', (client) => {
    // pg-pool listens for errors only on idle clients. A checked-out client whose backend
    // dies while no query of it is active (pg_terminate_backend or a PostgreSQL shutdown
    // landing between a transaction's statements, or in the same packet as the
    // ReadyForQuery that ended the last query, before the client is released) emits
    // 'error' with nobody listening, which crashes the process. The client is marked
    // unusable either way: its next query fails with a connection error (UNAVAILABLE to
    // the caller) and the pool discards it on release.
    client.on('error', () => undefined);
  });
  return pool;
}

/** Options for {@link createDatabase}. */
export interface DatabaseOptions {
  /**
   * Run the engine's hot statements as named prepared statements (src/db/prepared-statements.ts).
   * Default true; false behind PgBouncer in transaction mode before 1.21, which cannot keep a
   * prepared statement between transactions.
   */
  preparedStatements?: boolean;
}

/** Wraps a pool in a Kysely instance. Destroying the Kysely instance ends the pool. */
export function createDatabase(pool: pg.Pool, options: DatabaseOptions = {}): Kysely<Database> {
  const prepared = options.preparedStatements ?? true;
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool: prepared ? preparingPool(pool) : pool }),
  });
}
