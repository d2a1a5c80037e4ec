import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import pg from 'pg';
import type { Database } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrator.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';

/** The server benches run against when DATABASE_URL is not set. */
export const DATABASE_URL_DEFAULT = 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh, migrated database of its own for one bench script. */
export interface BenchDatabase {
  /** holdline_bench_<random hex>. */
  name: string;
  /** Connection string of the bench database. */
  url: string;
  /** A small pool for setup, truncation and checks: never the measured connections. */
  admin: Kysely<Database>;
  /** Aborted on SIGINT or SIGTERM: stop measuring and return (the database is then dropped). */
  signal: AbortSignal;
}

/** DATABASE_URL, or {@link DATABASE_URL_DEFAULT}. */
export function serverUrl(): string {
  const given = process.env.DATABASE_URL;
  return given === undefined || given === '' ? DATABASE_URL_DEFAULT : given;
}

/** The same server URL pointed at another database. */
export function databaseUrl(server: string, database: string): string {
  const parsed = new URL(server);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Creates holdline_bench_<random> on the server, migrates it with migrateToLatest, runs
 * `work`, and drops the database afterwards (forcing out connections left open), also when
 * `work` throws. The first SIGINT or SIGTERM aborts `bench.signal` so that `work` winds down
 * and the database is dropped on the way out; a second one drops it at once and exits.
 */
export async function withBenchDatabase<T>(work: (bench: BenchDatabase) => Promise<T>): Promise<T> {
  const server = serverUrl();
  const name = `holdline_bench_${randomBytes(6).toString('hex')}`;
  await onServer(server, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  const drop = (): Promise<void> =>
    onServer(server, (c) =>
      c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
    );
  const interrupted = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    const exitCode = signal === 'SIGINT' ? 130 : 143;
    if (!interrupted.signal.aborted) {
      process.stderr.write(`${signal}: stopping, then dropping ${name}\n`);
      process.exitCode = exitCode;
      interrupted.abort(signal);
      return;
    }
    process.stderr.write(`${signal} again: dropping ${name} now\n`);
    drop()
      .catch((error: unknown) => process.stderr.write(`could not drop ${name}: ${String(error)}\n`))
      .finally(() => process.exit(exitCode));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const url = databaseUrl(server, name);
  const admin = createDatabase(
    createPool({ connectionString: url, max: 2, applicationName: 'holdline-bench-admin' }),
  );
  try {
    await migrateToLatest(admin);
    return await work({ name, url, admin, signal: interrupted.signal });
  } finally {
    await admin.destroy();
    await drop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function onServer(url: string, run: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'holdline-bench' });
  await client.connect();
  try {
    await run(client);
  } finally {
    await client.end();
  }
}

let checkpointWarned = false;

/**
 * Takes a CHECKPOINT so that every run pays the same full-page writes. Needs superuser or
 * pg_checkpoint; without, the run goes ahead and the first refusal is reported on stderr.
 */
export async function checkpoint(db: Kysely<Database>): Promise<void> {
  try {
    await sql`CHECKPOINT`.execute(db);
  } catch (error) {
    if (!checkpointWarned) process.stderr.write(`no CHECKPOINT between runs: ${String(error)}\n`);
    checkpointWarned = true;
  }
}

/** Committed transactions of the bench database so far (statistics flush within ~1 s). */
export async function committedTransactions(bench: BenchDatabase): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  const { rows } = await sql<{ n: string }>`
    SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()
  `.execute(bench.admin);
  return Number(rows[0]!.n);
}
