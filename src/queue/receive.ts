import { sql } from 'kysely';
import type { MessageRow } from '../db/database.ts';
import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { toDelivery } from './message-row.ts';
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
    sql<MessageRow>`
      SELECT * FROM holdline.receive(${queue}, ${max}::integer, ${visibility}::integer, ${params.now ?? null}::timestamptz)
    `.execute(db),
  );
  return rows.map(toDelivery);
}
