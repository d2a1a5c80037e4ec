import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { toMessage } from './message-row.ts';
import {
  MessageGetWithPosition,
  QueueStatsGet,
  QueueStatsList,
  QueueGroupRateLimitNextToken,
  QueueRateLimitNextToken,
  QueueWaitingGet,
} from './sql/index.ts';
import type { Message, QueueStats, WaitingCounts, WaitingReason } from './types.ts';
import { validateQueueName } from './validation.ts';

/** How far back the dequeue rate behind estimated waits looks. */
export const DEQUEUE_RATE_WINDOW_SECONDS = 300;

interface StatsRow {
  queue: string;
  ready: string;
  delayed: string;
  leased: string;
  total: string;
  oldest_ready_age: number | null;
}

function toStats(row: StatsRow): QueueStats {
  return {
    queue: row.queue,
    ready: Number(row.ready),
    delayed: Number(row.delayed),
    leased: Number(row.leased),
    total: Number(row.total),
    oldestReadyAgeSeconds: row.oldest_ready_age,
  };
}

/**
 * Counts of one queue's messages by state (the holdline.queue_stats view), or undefined
 * when the queue does not exist. Counts an index range: cheap for thousands of messages,
 * tens of milliseconds for millions; callers that poll it should coalesce.
 */
export async function queueStats(
  db: Executor,
  params: { queue: string },
): Promise<QueueStats | undefined> {
  const queue = validateQueueName(params.queue);
  const { rows } = await translated(() => QueueStatsGet.run(db, [queue]));
  const row = rows[0];
  return row === undefined ? undefined : toStats(row);
}

/** Stats of every queue, by name. */
export async function allQueueStats(db: Executor): Promise<QueueStats[]> {
  const { rows } = await translated(() => QueueStatsList.run(db, []));
  return rows.map(toStats);
}

/** A message with, when it is ready, its place in line. */
export interface MessageWithPosition extends Message {
  /** Ready messages that will be delivered before this one (0: it is next); null unless READY. */
  position: number | null;
  /** Seconds until delivery at the queue's recent dequeue rate; null unless READY or with no recent dequeues. */
  estimatedWaitSeconds: number | null;
  /** Why it is not being delivered (see WaitingReason); null while leased. */
  waitingReason: WaitingReason | null;
  /**
   * When it will next be eligible, where that is known: its due time when DELAYED or
   * BACKING_OFF, the time of the request when READY; else null (it waits on other messages).
   */
  nextEligibleAt: Date | null;
}

const MESSAGE_ID_PATTERN = /^[1-9][0-9]{0,18}$/;

/**
 * One message by id, or undefined. For a READY message, also how many ready messages are
 * ahead of it in delivery order and an estimated wait: (position + 1) divided by the
 * queue's deliveries per second over the last five minutes ("you are 5th in line").
 */
export async function getMessage(
  db: Executor,
  params: { id: string; now?: Date },
): Promise<MessageWithPosition | undefined> {
  if (!MESSAGE_ID_PATTERN.test(params.id)) throw badInput('message id must be a positive integer');
  const { rows } = await translated(() =>
    MessageGetWithPosition.run(db, [params.id, params.now ?? null, DEQUEUE_RATE_WINDOW_SECONDS]),
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  const position = row.position === null ? null : Number(row.position);
  const rate = row.deliveries_per_second;
  return {
    ...toMessage(row, params.now),
    position,
    estimatedWaitSeconds:
      position === null || rate === null || rate <= 0 ? null : (position + 1) / rate,
    waitingReason: row.waiting_reason,
    nextEligibleAt: row.next_eligible_at,
  };
}

/**
 * One queue's unleased messages counted by the reason they wait (holdline.queue_waiting), or
 * undefined when the queue does not exist. Probes each due message of a group for an earlier
 * one: for asking why a queue is not draining, not for polling.
 */
export async function waitingCounts(
  db: Executor,
  params: { queue: string },
): Promise<WaitingCounts | undefined> {
  const queue = validateQueueName(params.queue);
  const { rows } = await translated(() => QueueWaitingGet.run(db, [queue]));
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    queue: row.queue,
    ready: Number(row.ready),
    delayed: Number(row.delayed),
    backingOff: Number(row.backing_off),
    groupHeadInFlight: Number(row.group_head_in_flight),
    queuePaused: Number(row.queue_paused),
    concurrencyCap: Number(row.concurrency_cap),
    rateLimited: Number(row.rate_limited),
    leased: Number(row.leased),
    maxInFlight: row.max_in_flight,
  };
}

/**
 * When a rate-limited queue's bucket, as its last charge left it, has its next whole token:
 * milliseconds from now (0: due already) and a key naming that charge. Undefined when the last
 * charge left a whole token (so the bucket holds nothing back), or without a rate limit.
 */
export async function rateLimitNextToken(
  db: Executor,
  params: { queue: string },
): Promise<{ delayMs: number; chargedAt: string } | undefined> {
  const { rows } = await translated(() => QueueRateLimitNextToken.run(db, [params.queue]));
  const row = rows[0];
  return row === undefined ? undefined : { delayMs: row.delay_ms, chargedAt: row.charged_at };
}

/**
 * As {@link rateLimitNextToken}, for a queue's per-group rate limit: the soonest group whose
 * last charge left it less than a whole token, other than the charge `exceptCharge`.
 * Undefined when there is none.
 */
export async function groupRateLimitNextToken(
  db: Executor,
  params: { queue: string; exceptCharge: string | null },
): Promise<{ delayMs: number; chargedAt: string } | undefined> {
  const { rows } = await translated(() =>
    QueueGroupRateLimitNextToken.run(db, [params.queue, params.exceptCharge]),
  );
  const row = rows[0];
  return row === undefined ? undefined : { delayMs: row.delay_ms, chargedAt: row.charged_at };
}
