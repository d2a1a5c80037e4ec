/**
 * pgmq as a peer (W1 single sends, W2 batch sends, W3 drain): the lean PostgreSQL queue, a
 * table per queue with one narrow index, used through its own SQL functions the way its
 * documentation shows (`pgmq.send`, `pgmq.send_batch`, `pgmq.read`, `pgmq.delete(ids[])`).
 * Its SQL is not an npm package: the vendored copy (tembo-io/pgmq, see docs/performance.md)
 * is installed into the bench database with psql. Without psql or the file, the benches
 * leave pgmq out with a note rather than fail.
 */
import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type pg from 'pg';
import type { BenchDatabase } from './database.ts';

/**
 * Where pgmq's SQL is read from when PGMQ_SQL is not set: the shared vendor folder beside
 * the checkout (TOOLCHAIN.md).
 */
export const PGMQ_SQL_DEFAULT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../shared/vendor/pgmq.sql',
);

/** Which pgmq the vendored SQL is (TOOLCHAIN.md), for labels and the JSON lines. */
export const PGMQ_SOURCE = 'pgmq (tembo-io/pgmq a5890283f79f, SQL only)';

/** The bench's key for pgmq: ratios to pgmq are taken against the system with this key. */
export const PGMQ_KEY = 'pgmq';

/** PGMQ_SQL, or {@link PGMQ_SQL_DEFAULT}. */
export function pgmqSqlPath(): string {
  const given = process.env.PGMQ_SQL;
  return given === undefined || given === '' ? PGMQ_SQL_DEFAULT : given;
}

/** psql's exit: resolves when it ran the file without error, rejects with its stderr. */
function runPsql(url: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // -X: no ~/.psqlrc; ON_ERROR_STOP: a failing statement fails the install.
    const child = spawn('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`psql exited with ${String(code)}: ${stderr.trim()}`));
    });
  });
}

/**
 * Installs pgmq's schema into the bench database and creates `queue` (a plain,
 * logged queue: `pgmq.create`). Resolves with the reason instead when pgmq cannot be
 * installed here (no psql, no SQL file), so that the caller skips it with a note.
 */
export async function installPgmq(
  bench: BenchDatabase,
  queue: string,
): Promise<{ installed: true } | { installed: false; reason: string }> {
  const file = pgmqSqlPath();
  try {
    await access(file);
  } catch {
    return { installed: false, reason: `no pgmq SQL at ${file} (set PGMQ_SQL)` };
  }
  try {
    await runPsql(bench.url, file);
  } catch (error) {
    return { installed: false, reason: error instanceof Error ? error.message : String(error) };
  }
  await sql`SELECT pgmq.create(${queue})`.execute(bench.admin);
  return { installed: true };
}

/** pgmq's table for `queue` (its naming: q_<name>, lower case). */
export function pgmqTable(queue: string): string {
  return `pgmq.q_${queue.toLowerCase()}`;
}

/** One message: `pgmq.send(queue, msg)`, its id back (autocommit: one transaction each). */
export const PGMQ_SEND = 'SELECT * FROM pgmq.send($1, $2::jsonb)';
/** A batch in one statement: `pgmq.send_batch(queue, msgs[])`, ids back. */
export const PGMQ_SEND_BATCH = 'SELECT * FROM pgmq.send_batch($1, $2::jsonb[])';
/** Leases up to $3 messages for $2 seconds: `pgmq.read` (SKIP LOCKED, in msg_id order). */
export const PGMQ_READ = 'SELECT msg_id FROM pgmq.read($1, $2::integer, $3::integer)';
/** Acks a batch: `pgmq.delete(queue, ids[])`. */
export const PGMQ_DELETE_MANY = 'SELECT * FROM pgmq.delete($1, $2::bigint[])';
/** The visibility timeout the drain's reads take, seconds (holdline's default lease). */
export const PGMQ_READ_VT_SECONDS = 30;

/** Empties `queue`'s table between runs (pgmq's purge_queue counts rows first: slower). */
export function pgmqReset(queue: string): string {
  return `TRUNCATE ${pgmqTable(queue)}`;
}

/** Rows in `queue`'s table: messages not yet deleted. */
export function pgmqCount(queue: string): string {
  return `SELECT count(*)::integer AS n FROM ${pgmqTable(queue)}`;
}

/**
 * The drain's step for pgmq on `client` (each statement its own transaction): a read of up
 * to `max`, then one delete of their ids. Resolves with how many it read.
 */
export async function pgmqReadAndDelete(
  client: pg.ClientBase,
  queue: string,
  max: number,
): Promise<number> {
  const { rows } = await client.query<{ msg_id: string }>(PGMQ_READ, [
    queue,
    PGMQ_READ_VT_SECONDS,
    max,
  ]);
  if (rows.length > 0) {
    await client.query(PGMQ_DELETE_MANY, [queue, rows.map((r) => r.msg_id)]);
  }
  return rows.length;
}
