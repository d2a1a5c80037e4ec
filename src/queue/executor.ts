import { CompiledQuery } from 'kysely';
import type { Kysely, QueryResult, Transaction } from 'kysely';
import type { Database } from '../db/database.ts';
import { markPrepared } from '../db/prepared-statements.ts';
import { translated } from './errors.ts';

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
 * One of the engine's hot statements (a send, receive, ack, nack or lease extension): its SQL
 * text fixed once, with $n placeholders, run with each call's parameters. Fixed text skips
 * kysely's compiler on every call (profiled: about a tenth of the engine's Node CPU per
 * single send) and lets the statement be prepared on connections whose pool allows it (see
 * src/db/prepared-statements.ts). Lists go in as array parameters, so the text never varies.
 */
export class HotStatement<R> {
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
    markPrepared(text);
  }

  /** Runs the statement on `db` (a caller's Transaction too); failures come translated. */
  run(db: Executor, parameters: unknown[]): Promise<QueryResult<R>> {
    return translated(() => db.executeQuery<R>(CompiledQuery.raw(this.#text, parameters)));
  }
}
