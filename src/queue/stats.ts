import { sql } from 'kysely';
import type { MessageRow } from '../db/database.ts';
import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { toMessage } from './message-row.ts';
import type { Message, QueueStats } from './types.ts';
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
  const row = await translated(() =>
    db.selectFrom('holdline.queue_stats').selectAll().where('queue', '=', queue).executeTakeFirst(),
  );
  return row === undefined ? undefined : toStats(row);
}

/** Stats of every queue, by name. */
export async function allQueueStats(db: Executor): Promise<QueueStats[]> {
  const rows = await translated(() =>
    db.selectFrom('holdline.queue_stats').selectAll().orderBy('queue').execute(),
  );
  return rows.map(toStats);
}

/** A message with, when it is ready, its place in line. */
export interface MessageWithPosition extends Message {
  /** Ready messages that will be delivered before this one (0: it is next); null unless READY. */
  position: number | null;
  /** Seconds until delivery at the queue's recent dequeue rate; null unless READY or with no recent dequeues. */
  estimatedWaitSeconds: number | null;
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
    sql<MessageRow & { position: string | null; deliveries_per_second: number | null }>`
      WITH clock AS (SELECT coalesce(${params.now ?? null}::timestamptz, now()) AS now)
      SELECT m.*,
             CASE WHEN m.lease_token IS NULL AND m.run_at <= clock.now THEN (
               SELECT count(*) FROM holdline.messages o
               WHERE o.queue = m.queue AND o.lease_token IS NULL AND o.run_at <= clock.now
                 AND (o.priority > m.priority
                      OR (o.priority = m.priority AND (o.run_at, o.id) < (m.run_at, m.id)))
             ) END AS position,
             (SELECT sum(d.deliveries)::double precision
                     / greatest(60, extract(epoch FROM clock.now - min(d.minute)))
              FROM holdline.dequeue_counts d
              WHERE d.queue = m.queue
                AND d.minute >= clock.now - make_interval(secs => ${DEQUEUE_RATE_WINDOW_SECONDS})
             ) AS deliveries_per_second
      FROM holdline.messages m, clock
      WHERE m.id = ${params.id}::bigint
    `.execute(db),
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
  };
}
