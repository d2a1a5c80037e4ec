import type { MessageRow } from '../db/database.ts';
import { HotStatement } from './executor.ts';
import type { Executor } from './executor.ts';
import { leaseLost } from './ack.ts';
import { toDelivery } from './message-row.ts';
import { decodeReceipt } from './receipts.ts';
import type { Delivery } from './types.ts';
import { LEASE_MAX_SECONDS, validateInteger } from './validation.ts';

const EXTEND_LEASE = new HotStatement<MessageRow>(`
  UPDATE holdline.messages
  SET lease_expires_at = coalesce($1::timestamptz, now()) + make_interval(secs => $2)
  WHERE id = $3::bigint AND lease_token = $4::uuid
  RETURNING *`);

/**
 * Sets a delivery's lease to end `seconds` from now (as SQS ChangeMessageVisibility: from
 * now, not added to what is left). Fenced by the lease token: LEASE_LOST when the lease was
 * lost. The receipt stays the same.
 */
export async function extendLease(
  db: Executor,
  params: { receipt: string; seconds: number; now?: Date },
): Promise<Delivery> {
  const { messageId, leaseToken } = decodeReceipt(params.receipt);
  const seconds = validateInteger(params.seconds, 'seconds', 1, LEASE_MAX_SECONDS);
  const { rows } = await EXTEND_LEASE.run(db, [params.now ?? null, seconds, messageId, leaseToken]);
  const row = rows[0];
  if (row === undefined) throw leaseLost();
  return toDelivery(row);
}
