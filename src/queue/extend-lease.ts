import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { leaseLost } from './lease-lost.ts';
import { toDelivery } from './message-row.ts';
import { decodeReceipt } from './receipts.ts';
import { MessageExtendLease } from './sql/index.ts';
import type { Delivery } from './types.ts';
import { LEASE_MAX_SECONDS, validateInteger } from './validation.ts';

/**
 * Sets a delivery's lease to end `seconds` from now (as SQS ChangeMessageVisibility: from
 * now, not added to what is left), through holdline.extend_lease. Fenced by the lease token:
 * LEASE_LOST when the lease was lost. The receipt stays the same.
 */
export async function extendLease(
  db: Executor,
  params: { receipt: string; seconds: number; now?: Date },
): Promise<Delivery> {
  const { messageId, leaseToken } = decodeReceipt(params.receipt);
  const seconds = validateInteger(params.seconds, 'seconds', 1, LEASE_MAX_SECONDS);
  const { rows } = await translated(() =>
    MessageExtendLease.run(db, [messageId, leaseToken, seconds, params.now ?? null]),
  );
  const row = rows[0];
  if (row === undefined) throw await leaseLost(db, messageId);
  return toDelivery(row);
}
