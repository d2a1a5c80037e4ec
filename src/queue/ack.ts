import { SQLSTATE, sqlState } from '../db/pg-errors.ts';
import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { leaseLost } from './lease-lost.ts';
import { decodeReceipt } from './receipts.ts';
import type { Receipt } from './receipts.ts';
import {
  MessageAck,
  MessageAckMany,
  MessageAckManyInQueues,
  MessageAckManyWithin,
  MessageGetQueueByLease,
} from './sql/index.ts';
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

/**
 * {@link ackBatch} for a caller kept to some queues (LIKE patterns, see
 * {@link queueLikePatterns}), in one statement: all the deliveries whose lease holds are
 * acknowledged, or, when one of them is in a queue outside the patterns, none, and the result
 * names that queue for the caller to refuse. A malformed receipt fails with BAD_USER_INPUT.
 */
export async function ackBatchWithin(
  db: Executor,
  params: { receipts: readonly string[]; queuePatterns: string[] },
): Promise<{ acked: AckedMessage[] } | { outside: string }> {
  validateBatch(params.receipts, 'receipts');
  const decoded = params.receipts.map(decodeReceipt);
  try {
    const { rows } = await translated(() =>
      MessageAckManyWithin.run(db, [
        decoded.map((r) => r.messageId),
        decoded.map((r) => r.leaseToken),
        params.queuePatterns,
      ]),
    );
    return { acked: rows };
  } catch (error) {
    const detail = (error as { detail?: unknown }).detail;
    if (sqlState(error) === SQLSTATE.outsideQueues && typeof detail === 'string') {
      return { outside: detail };
    }
    throw error;
  }
}

/**
 * Acknowledges deliveries of different callers in one statement (holdline.ack_batch with
 * queue patterns, 0008): what the engine's coalesced single acks run. Each delivery is
 * deleted only when its lease token still holds and, with `queuePatterns` (LIKE patterns,
 * see {@link queueLikePatterns}), when its queue matches one. Returns, per receipt in
 * order, what was acked, or undefined for a delivery left alone (lease lost, or outside the
 * patterns). The receipts' message ids must differ: a result row names only its id.
 */
export async function ackEach(
  db: Executor,
  params: { receipts: readonly Receipt[]; queuePatterns: string[] | null },
): Promise<(AckedMessage | undefined)[]> {
  const { receipts, queuePatterns } = params;
  const { rows } = await translated(() =>
    MessageAckManyInQueues.run(db, [
      receipts.map((r) => r.messageId),
      receipts.map((r) => r.leaseToken),
      queuePatterns,
    ]),
  );
  const acked = new Map(rows.map((row) => [row.id, row]));
  return receipts.map((r) => {
    const row = acked.get(r.messageId);
    return row === undefined ? undefined : { queue: row.queue, ageSeconds: row.ageSeconds };
  });
}

/**
 * The queue of a delivery whose lease still holds, or undefined when it was lost: after
 * {@link ackEach} with queue patterns left it alone, whether it was outside them.
 */
export async function leasedQueue(db: Executor, receipt: Receipt): Promise<string | undefined> {
  const { rows } = await translated(() =>
    MessageGetQueueByLease.run(db, [receipt.messageId, receipt.leaseToken]),
  );
  return rows[0]?.queue;
}

/**
 * Scope patterns (a queue name in which `*` matches any run of characters, of the letters,
 * digits and `_ . - *` a pattern may hold) as LIKE patterns: `*` becomes `%`, and `_`, LIKE's
 * one-character wildcard, is escaped.
 */
export function queueLikePatterns(patterns: readonly string[]): string[] {
  return patterns.map((p) => p.replace(/[\\%_]/g, '\\$&').replace(/\*/g, '%'));
}
