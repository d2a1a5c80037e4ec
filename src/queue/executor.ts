import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/database.ts';

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
