import { Kysely, PostgresDialect } from 'kysely';
import type { PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import type { HoldlineClient } from '../client/holdline-client.ts';
import type { Message } from '../client/types.ts';
import type { Database } from '../db/database.ts';
import { QueueEngine } from '../queue/index.ts';
import type { EngineTransaction, Executor, SendInput } from '../queue/index.ts';
import { fromEngineError, toContractMessage } from './engine-transport.ts';

/**
 * Where a transactional send runs: a kysely `Transaction` (or any Kysely instance, over any
 * database type: only Holdline's SQL functions are called through it), or a `pg` client
 * (`pool.connect()`'s PoolClient, or a Client) on which the caller has run BEGIN.
 */
// `any`: a caller's Kysely<TheirDatabase> must fit whatever their schema is, and Kysely's
// type is invariant in it; only Holdline's SQL functions are called through it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TransactionTarget = Kysely<any> | pg.ClientBase;

/**
 * Sends that join the caller's transaction (see {@link transactionSender}): the client's
 * three sends, committed with the caller's data or not at all.
 */
export type TransactionSender = Pick<HoldlineClient, 'send' | 'sendBatch' | 'publish'>;

/** Kysely instances made over callers' pg clients, so each client is wrapped once. */
const clientExecutors = new WeakMap<pg.ClientBase, Executor>();

/**
 * The engine's executor for a caller's transaction. A Kysely instance is used as it is; a pg
 * client is wrapped in a Kysely over a one-client "pool" whose release() does nothing, so
 * every statement runs on that client, inside whatever transaction it has open, and the
 * client stays the caller's to commit and release.
 */
export function executorFor(target: TransactionTarget): Executor {
  if (isKysely(target)) return target as Executor;
  let executor = clientExecutors.get(target);
  if (executor === undefined) {
    const lent = {
      query: (text: string, values: readonly unknown[]) => target.query(text, [...values]),
      release: () => undefined,
    } as unknown as PostgresPoolClient;
    executor = new Kysely<Database>({
      dialect: new PostgresDialect({
        pool: { connect: () => Promise.resolve(lent), end: () => Promise.resolve() },
      }),
    });
    clientExecutors.set(target, executor);
  }
  return executor;
}

/** Duck-typed: the caller's kysely may be another copy than Holdline's, so no instanceof. */
function isKysely(target: TransactionTarget): target is Exclude<TransactionTarget, pg.ClientBase> {
  const candidate = target as Partial<Executor>;
  return (
    typeof candidate.executeQuery === 'function' && typeof candidate.transaction === 'function'
  );
}

/**
 * Enqueues one message inside the caller's transaction: it commits with the caller's data
 * or not at all, and waiting consumers are woken when (and only if) the transaction
 * commits. Needs no Holdline client, only the caller's connection; the queue must exist
 * (QUEUE_NOT_FOUND otherwise, which aborts the caller's transaction as any failed statement
 * does). Rejects with a {@link HoldlineError}; never retried (the transaction is the
 * caller's to retry).
 *
 * @example
 * await db.transaction().execute(async (trx) => {
 *   await trx.insertInto('orders').values(order).execute();
 *   await send(trx, 'orders', { payload: { orderId: order.id } });
 * });
 */
export function send<Payload = unknown>(
  target: TransactionTarget,
  queue: string,
  message: SendInput,
): Promise<Message<Payload>> {
  return transactionSender(target).send<Payload>(queue, message);
}

/** {@link send} for 1 to 1000 messages into one queue; one Message per input, in order. */
export function sendBatch<Payload = unknown>(
  target: TransactionTarget,
  queue: string,
  messages: readonly SendInput[],
): Promise<Message<Payload>[]> {
  return transactionSender(target).sendBatch<Payload>(queue, messages);
}

/** {@link send} to every queue bound to a pattern matching `topic`; the copies. */
export function publish<Payload = unknown>(
  target: TransactionTarget,
  topic: string,
  message: SendInput,
): Promise<Message<Payload>[]> {
  return transactionSender(target).publish<Payload>(topic, message);
}

/**
 * The three sends bound to one transaction, through the engine without one running
 * ({@link QueueEngine.within}: no events, waiters woken by the commit's NOTIFY).
 */
export function transactionSender(target: TransactionTarget): TransactionSender {
  return contractSender(QueueEngine.within(executorFor(target)));
}

/**
 * The contract's view of an engine's transactional sends: contract Messages, and
 * HoldlineErrors in place of the engine's QueueErrors. Never retried: the transaction is the
 * caller's to retry.
 */
export function contractSender(tx: EngineTransaction): TransactionSender {
  return {
    async send<Payload>(queue: string, message: SendInput) {
      return toContractMessage<Payload>(await translated(() => tx.send(queue, message)));
    },
    async sendBatch<Payload>(queue: string, messages: readonly SendInput[]) {
      const sent = await translated(() => tx.sendBatch(queue, messages));
      return sent.map((m) => toContractMessage<Payload>(m));
    },
    async publish<Payload>(topic: string, message: SendInput) {
      const sent = await translated(() => tx.publish(topic, message));
      return sent.map((m) => toContractMessage<Payload>(m));
    },
  };
}

async function translated<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw fromEngineError(error);
  }
}
