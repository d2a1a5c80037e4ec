import { QueueError, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { MessageGetLeaseState } from './sql/index.ts';

/**
 * The LEASE_LOST error of a fenced operation (ack, nack, extendLease) whose receipt matched
 * no lease, saying what became of the message: gone (acknowledged already, or deleted), dead-
 * lettered, leased again under another receipt, or waiting for its next delivery. Runs one
 * primary-key read, on the failure path only: the fenced statement itself answers a success,
 * and adding a read there would tax every ack.
 *
 * The message may change between the two statements (a concurrent receive, the reaper); the
 * answer describes what the read saw, and the operation changed nothing either way. It never
 * names a queue, since the caller may hold a receipt for a queue it may not read: a message
 * id that never existed reads as gone, exactly like an acknowledged one.
 */
export async function leaseLost(db: Executor, messageId: string): Promise<QueueError> {
  const { rows } = await translated(() => MessageGetLeaseState.run(db, [messageId]));
  return new QueueError('LEASE_LOST', leaseLostMessage(rows[0]));
}

function leaseLostMessage(state: { leased: boolean; dead_lettered: boolean } | undefined): string {
  if (state === undefined) {
    return "this receipt's message is gone: it was acknowledged already, or deleted (purged, or its queue deleted); nothing was changed";
  }
  if (state.leased) {
    return "this receipt's lease was lost: the message was delivered again under another receipt (after this lease expired, or the delivery was nacked); nothing was changed";
  }
  if (state.dead_lettered) {
    return "this receipt's lease was lost: the message used up its attempts and is now a dead letter in its dead-letter queue; nothing was changed";
  }
  return "this receipt's lease was lost: it expired and was reaped, or the delivery was nacked, and the message waits for its next delivery; nothing was changed";
}
