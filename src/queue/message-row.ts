import type { MessageRow } from './sql/tables.ts';
import { encodeReceipt } from './receipts.ts';
import type { Delivery, Message, MessageState } from './types.ts';

/** The state a row is in at `now`. */
export function messageState(row: MessageRow, now: Date = new Date()): MessageState {
  if (row.lease_token !== null) return 'LEASED';
  return row.run_at.getTime() > now.getTime() ? 'DELAYED' : 'READY';
}

/** Maps a message row (see MessageRow) to the API's Message. */
export function toMessage(row: MessageRow, now?: Date): Message {
  return {
    id: String(row.id),
    queue: row.queue,
    payload: row.payload,
    headers: row.headers,
    priority: row.priority,
    attempts: row.attempts,
    state: messageState(row, now),
    runAt: row.run_at,
    createdAt: row.created_at,
    lastError: row.last_error,
    originQueue: row.origin_queue,
    dedupKey: row.dedup_key,
    groupKey: row.group_key,
    deadLetteredAt: row.dead_lettered_at,
    leaseExpiresAt: row.lease_expires_at,
  };
}

/** Maps a freshly leased row to a Delivery. */
export function toDelivery(row: MessageRow): Delivery {
  if (row.lease_token === null || row.lease_expires_at === null) {
    throw new Error(`message ${row.id} is not leased`);
  }
  return {
    receipt: encodeReceipt(String(row.id), row.lease_token),
    leaseExpiresAt: row.lease_expires_at,
    message: toMessage(row),
  };
}
