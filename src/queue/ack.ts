import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { leaseLost } from './lease-lost.ts';
import { decodeReceipt } from './receipts.ts';
import { MessageAck, MessageAckMany } from './sql/index.ts';
import { validateBatch } from './validation.ts';

/**
 * Acknowledges a delivery: the message is done and deleted (holdline.ack). Fenced by the
 * receipt's lease token: when the lease was lost (reaped, or re-delivered to someone else) it
 * changes nothing and fails with LEASE_LOST, so it can never ack another consumer's delivery.
 * The error's message says what became of the message (see lease-lost.ts).
 */
export async function ack(db: Executor, params: { receipt: string }): Promise<AckedMessage> {
  const { messageId, leaseToken } = decodeReceipt(params.receipt);
  const { rows } = await translated(() => MessageAck.run(db, [messageId, leaseToken]));
  const acked = rows[0];
  // Only a failure pays for the read that says why (lease-lost.ts).
  if (acked === undefined) throw await leaseLost(db, messageId);
  return acked;
}

/** What an ack removed: the message's queue and how long it lived, send to ack. */
export interface AckedMessage {
  queue: string;
  /** Seconds from created_at (the start of the sending transaction) to the ack. */
  ageSeconds: number;
}

/**
 * Acknowledges many deliveries in one statement (holdline.ack_batch). Receipts whose lease
 * was lost are left alone; the result lists the messages acknowledged (per-item outcomes are
 * data, not errors). A malformed receipt fails the whole call with BAD_USER_INPUT before
 * anything is deleted.
 */
export async function ackBatch(
  db: Executor,
  params: { receipts: readonly string[] },
): Promise<AckedMessage[]> {
  validateBatch(params.receipts, 'receipts');
  const decoded = params.receipts.map(decodeReceipt);
  const { rows } = await translated(() =>
    MessageAckMany.run(db, [decoded.map((r) => r.messageId), decoded.map((r) => r.leaseToken)]),
  );
  return rows;
}
