import { sql } from 'kysely';
import { QueueError, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { decodeReceipt } from './receipts.ts';
import { validateBatch } from './validation.ts';

/**
 * Acknowledges a delivery: the message is done and deleted. Fenced by the receipt's lease
 * token: when the lease was lost (reaped, or re-delivered to someone else) it changes
 * nothing and fails with LEASE_LOST, so it can never ack another consumer's delivery.
 */
export async function ack(db: Executor, params: { receipt: string }): Promise<void> {
  const { messageId, leaseToken } = decodeReceipt(params.receipt);
  const result = await translated(() =>
    db
      .deleteFrom('holdline.messages')
      .where('id', '=', sql<string>`${messageId}::bigint`)
      .where('lease_token', '=', leaseToken)
      .executeTakeFirst(),
  );
  if (result.numDeletedRows === 0n) throw leaseLost();
}

/**
 * Acknowledges many deliveries in one statement. Receipts whose lease was lost are left
 * alone; the result is how many were acknowledged (per-item outcomes are data, not errors).
 * A malformed receipt fails the whole call with BAD_USER_INPUT before anything is deleted.
 */
export async function ackBatch(
  db: Executor,
  params: { receipts: readonly string[] },
): Promise<number> {
  validateBatch(params.receipts, 'receipts');
  const decoded = params.receipts.map(decodeReceipt);
  const result = await translated(() =>
    sql`
      DELETE FROM holdline.messages m
      USING unnest(${decoded.map((r) => r.messageId)}::bigint[], ${decoded.map((r) => r.leaseToken)}::uuid[])
            AS r(id, lease_token)
      WHERE m.id = r.id AND m.lease_token = r.lease_token
    `.execute(db),
  );
  return Number(result.numAffectedRows ?? 0n);
}

export function leaseLost(): QueueError {
  return new QueueError(
    'LEASE_LOST',
    'the lease of this receipt was lost (it expired and was reaped or re-delivered); the message was not changed',
  );
}
