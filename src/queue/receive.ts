import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { toDelivery } from './message-row.ts';
import { MessageLeaseMany } from './sql/index.ts';
import type { Delivery } from './types.ts';
import {
  LEASE_MAX_SECONDS,
  RECEIVE_MAX_LIMIT,
  validateInteger,
  validateQueueName,
} from './validation.ts';

/** Parameters of {@link receive}. */
export interface ReceiveParams {
  queue: string;
  /** Most messages to lease, 1 to 1000. Default 1. */
  max?: number;
  /** Lease length in seconds, 1 to 43,200; default: the queue's visibilityTimeoutSeconds. */
  visibilityTimeoutSeconds?: number | null;
  /** Clock override for tests; default the database's now(). */
  now?: Date;
}

/**
 * Leases up to `max` deliverable messages in delivery order (priority desc, runAt, id; a
 * message group one at a time), in one statement (holdline.receive: a CTE with FOR UPDATE
 * SKIP LOCKED), so concurrent receivers never get the same message while its lease is
 * valid. Each delivery counts as an attempt. Returns [] when nothing is deliverable or the
 * queue is paused; QUEUE_NOT_FOUND when it does not exist. Does not wait: long polling is
 * the engine's receive with waitSeconds.
 */
export async function receive(db: Executor, params: ReceiveParams): Promise<Delivery[]> {
  const queue = validateQueueName(params.queue);
  const max = validateInteger(params.max ?? 1, 'max', 1, RECEIVE_MAX_LIMIT);
  const visibility =
    params.visibilityTimeoutSeconds == null
      ? null
      : validateInteger(params.visibilityTimeoutSeconds, 'visibilityTimeout', 1, LEASE_MAX_SECONDS);
  const { rows } = await translated(() =>
    MessageLeaseMany.run(db, [queue, max, visibility, params.now ?? null]),
  );
  return rows.map((row) =>
    toDelivery({
      id: row.id,
      queue: row.queue,
      payload: row.payload,
      headers: row.headers,
      priority: row.priority,
      run_at: new Date(row.run_at_ms),
      attempts: row.attempts,
      lease_token: row.lease_token,
      lease_expires_at: new Date(row.lease_expires_at_ms),
      dedup_key: row.dedup_key,
      group_key: row.group_key,
      origin_queue: row.origin_queue,
      last_error: row.last_error,
      // Set on a message received from a dead-letter queue.
      dead_lettered_at: row.dead_lettered_at_ms === null ? null : new Date(row.dead_lettered_at_ms),
      created_at: new Date(row.created_at_ms),
    }),
  );
}
