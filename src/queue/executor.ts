import type { Kysely, QueryResult, RawBuilder, Transaction } from 'kysely';
import type { Database } from '../db/database.ts';
import { markPrepared } from '../db/prepared-statements.ts';

/**
 * What every engine operation runs on: the pool-backed Kysely instance, or a caller's
 * Transaction (which is a Kysely too), so an operation joins the caller's transaction.
 */
export type Executor = Kysely<Database>;

/** Advisory lock namespace of the queue lock ('HLQU'); the key is hashtext(queue name). */
export const QUEUE_LOCK_NAMESPACE = 1212961868;

/**
 * Runs `work` in a transaction: the caller's when `db` already is one, else a new one
 * committed when `work` resolves and rolled back when it throws.
 */
export async function inTransaction<T>(
  db: Executor,
  work: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  if (db.isTransaction) return work(db as Transaction<Database>);
  return db.transaction().execute(work);
}

/**
 * Runs one of the engine's hot statements (a send, receive, ack, nack or lease extension):
 * like `query.execute(db)`, and prepared on the connection where the pool allows it (see
 * src/db/prepared-statements.ts). The text must not vary with the input: lists go in as
 * array parameters.
 */
export function executePrepared<R>(db: Executor, query: RawBuilder<R>): Promise<QueryResult<R>> {
  const compiled = query.compile(db);
  markPrepared(compiled.sql);
  return db.executeQuery(compiled);
}
