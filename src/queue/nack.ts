import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { leaseLost } from './lease-lost.ts';
import { decodeReceipt } from './receipts.ts';
import { MessageNack } from './sql/index.ts';
import { DELAY_MAX_SECONDS, ERROR_TEXT_MAX_LENGTH, validateInteger } from './validation.ts';

/** What a nack did with the message. */
export type NackOutcome = 'retried' | 'dead_lettered';

/**
 * Gives a delivery back as failed, fenced by the lease token (LEASE_LOST when the lease was
 * lost; nothing changes then). A message that has used its queue's maxAttempts moves to the
 * dead-letter queue with `error` and its origin queue kept; any other becomes deliverable
 * again after `delaySeconds`, or after the queue's backoff when that is not given.
 */
export async function nack(
  db: Executor,
  params: { receipt: string; delaySeconds?: number | null; error?: string | null; now?: Date },
): Promise<NackedMessage> {
  const { messageId, leaseToken } = decodeReceipt(params.receipt);
  const delay =
    params.delaySeconds == null
      ? null
      : validateInteger(params.delaySeconds, 'delaySeconds', 0, DELAY_MAX_SECONDS);
  // An error text is a diagnostic, not data: keep it, but bounded.
  const error = params.error == null ? null : params.error.slice(0, ERROR_TEXT_MAX_LENGTH);
  const { rows } = await translated(() =>
    MessageNack.run(db, [messageId, leaseToken, delay, error, params.now ?? null]),
  );
  const nacked = rows[0];
  if (nacked === undefined) throw await leaseLost(db, messageId);
  return nacked;
}

/** What a nack did, and to a message of which queue. */
export interface NackedMessage {
  outcome: NackOutcome;
  /** The queue the message was in (its origin, when it was dead-lettered). */
  queue: string;
}
