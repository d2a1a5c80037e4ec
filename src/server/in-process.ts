import type { Kysely } from 'kysely';
import type pg from 'pg';
import pino from 'pino';
import type { Logger } from 'pino';
import { HoldlineError } from '../client/errors.ts';
import type { HoldlineClient } from '../client/holdline-client.ts';
import type { RetryOptions } from '../client/retry.ts';
import type { Database } from '../db/database.ts';
import type { QueueEngine } from '../queue/index.ts';
import { EngineTransport } from './engine-transport.ts';
import { createRuntime } from './runtime.ts';
import type { Runtime } from './runtime.ts';
import { contractSender, executorFor } from './transactional.ts';
import type { TransactionSender, TransactionTarget } from './transactional.ts';

/** Options of {@link createInProcessClient}: give `connectionString`, or your own `pool`. */
export interface InProcessClientOptions {
  /** PostgreSQL holding the holdline schema (run `npx holdline migrate` once). */
  connectionString?: string;
  /**
   * Your pg Pool, shared with your own queries; it stays yours (close() does not end it).
   * The LISTEN connection and the reaper's lock need a connection string besides: its
   * `connectionString` option, or `listenConnectionString`.
   */
  pool?: pg.Pool;
  /** A direct connection (not a transaction-mode pooler) for LISTEN and the reaper's lock.
   * Default: connectionString, or the pool's. */
  listenConnectionString?: string;
  /** Size of the pool made from connectionString. Default 10. */
  poolMax?: number;
  /**
   * Run the engine's hot statements (send, receive, ack, nack, extend) as named prepared
   * statements on the pool's connections: parsed and planned once per connection. Default
   * true; false when the pool goes through PgBouncer in transaction mode before 1.21.
   */
  preparedStatements?: boolean;
  /** How often idle long polls look again without a wake-up, in ms. Default 1000. */
  pollIntervalMs?: number;
  /**
   * Run a reaper here (requeues expired leases, dead-letters exhausted messages). Only one
   * process leads at a time (an advisory lock), so it is safe beside a Holdline service or
   * other workers. Turn it off only when another process surely runs one: without a reaper,
   * the messages of a crashed worker are never delivered again. Default true (interval
   * 1000 ms).
   */
  reaper?: boolean | { intervalMs?: number };
  /** pino logger for the listener, engine and reaper. Default: pino at level warn. */
  logger?: Logger;
  /** Retries of UNAVAILABLE failures for idempotent operations; see RetryOptions. */
  retry?: RetryOptions;
}

/** The in-process client: every HoldlineClient method, plus sends in your transaction. */
export interface InProcessClient extends HoldlineClient {
  /** The engine underneath, for what the contract does not cover (events, bindings list). */
  readonly engine: QueueEngine;
  /** The Kysely instance over the client's pool. */
  readonly db: Kysely<Database>;
  /**
   * Sends bound to your open transaction: a kysely Transaction, or a pg client after BEGIN.
   * They commit with your data; consumers in this process and elsewhere are woken on commit.
   */
  within(target: TransactionTarget): TransactionSender;
}

/**
 * A client that runs the engine in this process over a pg pool, with no HTTP hop: for
 * services next to the database. It connects a pool (or uses yours), one LISTEN connection
 * for wake-ups (long polls return within milliseconds of a commit) and, by default, a
 * leader-elected reaper. Same methods, results and errors as the HTTP client, so workers
 * run unchanged on either. close() stops its workers and releases everything it made.
 */
export async function createInProcessClient(
  options: InProcessClientOptions,
): Promise<InProcessClient> {
  const ownPool = options.pool === undefined;
  const connectionString =
    options.connectionString ?? options.pool?.options.connectionString ?? undefined;
  const listenConnectionString = options.listenConnectionString ?? connectionString;
  if (ownPool && connectionString === undefined) {
    throw new HoldlineError('BAD_USER_INPUT', 'give connectionString or pool');
  }
  if (listenConnectionString === undefined) {
    throw new HoldlineError(
      'BAD_USER_INPUT',
      'the pool has no connectionString: give listenConnectionString for the LISTEN connection and the reaper',
    );
  }
  const reaperOption = options.reaper ?? true;
  const runtime = createRuntime({
    logger: options.logger ?? pino({ level: 'warn', name: 'holdline' }),
    databaseUrl: connectionString,
    pool: options.pool,
    poolMax: options.poolMax,
    applicationName: 'holdline-client',
    preparedStatements: options.preparedStatements,
    listenDatabaseUrl: listenConnectionString,
    pollIntervalMs: options.pollIntervalMs,
    reaper: reaperOption === true ? {} : reaperOption,
  });
  try {
    await runtime.start();
  } catch (error) {
    throw new HoldlineError('UNAVAILABLE', 'could not connect to PostgreSQL', { cause: error });
  }
  return new InProcessEngineClient(runtime, options.retry);
}

class InProcessEngineClient extends EngineTransport implements InProcessClient {
  private closing: Promise<void> | undefined;

  readonly db: Kysely<Database>;

  constructor(
    private readonly runtime: Runtime,
    retry: RetryOptions | undefined,
  ) {
    super(runtime.engine, { retry });
    this.db = runtime.db;
  }

  within(target: TransactionTarget): TransactionSender {
    return contractSender(this.engine.within(executorFor(target)));
  }

  override close(): Promise<void> {
    this.closing ??= (async () => {
      // Workers first: they ack and release through the engine.
      await super.close();
      await this.runtime.stop();
    })();
    return this.closing;
  }
}
