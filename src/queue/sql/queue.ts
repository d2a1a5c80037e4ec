/** The engine's statements on holdline.queues and the queue_stats view. */
import type { QueueStatsView, QueueWaitingView, QueuesTable } from './tables.ts';
import type { Selectable } from 'kysely';
import { Statement } from '../../db/statement.ts';

/** A row of holdline.queues. */
export type QueueRow = Selectable<QueuesTable>;

/** A queue's settings as columns, every one given (QueueInsert) or NULL for "keep" (QueueUpdateConfig). */
export type ConfigParams = [
  visibilityTimeoutSeconds: number | null,
  maxAttempts: number | null,
  backoffInitialSeconds: number | null,
  backoffMaxSeconds: number | null,
  retentionSeconds: number | null,
  maxPayloadBytes: number | null,
  archiveSeconds: number | null,
];

/**
 * Inserts queue $1 with every setting given ($10: the concurrency cap, $11 and $12: the rate
 * limit, $13: the per-group cap, $14 and $15: the per-group rate limit, NULL for none); no row
 * when the name is taken.
 */
export const QueueInsert = new Statement<
  QueueRow,
  [
    name: string,
    deadLetterQueue: string | null,
    ...ConfigParams,
    maxInFlight: number | null,
    rateLimitCount: number | null,
    rateLimitPerSeconds: number | null,
    groupMaxInFlight: number | null,
    groupRateLimitCount: number | null,
    groupRateLimitPerSeconds: number | null,
  ]
>(
  'QueueInsert',
  `
  INSERT INTO holdline.queues (name, dead_letter_queue, visibility_timeout_seconds,
                               max_attempts, backoff_initial_seconds, backoff_max_seconds,
                               retention_seconds, max_payload_bytes, archive_seconds,
                               max_in_flight, rate_limit_count, rate_limit_per_seconds,
                               group_max_in_flight, group_rate_limit_count,
                               group_rate_limit_per_seconds)
  VALUES ($1, $2, $3::integer, $4::integer, $5::double precision, $6::double precision,
          $7::integer, $8::integer, $9::integer, $10::integer, $11::integer,
          $12::double precision, $13::integer, $14::integer, $15::double precision)
  ON CONFLICT (name) DO NOTHING
  RETURNING *`,
);

/**
 * Changes the settings of queue $1 that are given (NULL keeps a setting; the dead-letter
 * queue, the concurrency cap, the rate limit, the per-group cap and the per-group rate limit,
 * which may be set to NULL, are changed only when $2, $11, $13, $16, resp. $18, is true). No row: no such queue. The next
 * receive sees the change.
 */
export const QueueUpdateConfig = new Statement<
  QueueRow,
  [
    name: string,
    setDeadLetterQueue: boolean,
    deadLetterQueue: string | null,
    ...ConfigParams,
    setMaxInFlight: boolean,
    maxInFlight: number | null,
    setRateLimit: boolean,
    rateLimitCount: number | null,
    rateLimitPerSeconds: number | null,
    setGroupMaxInFlight: boolean,
    groupMaxInFlight: number | null,
    setGroupRateLimit: boolean,
    groupRateLimitCount: number | null,
    groupRateLimitPerSeconds: number | null,
  ]
>(
  'QueueUpdateConfig',
  `
  UPDATE holdline.queues
  SET dead_letter_queue = CASE WHEN $2::boolean THEN $3 ELSE dead_letter_queue END,
      visibility_timeout_seconds = coalesce($4::integer, visibility_timeout_seconds),
      max_attempts = coalesce($5::integer, max_attempts),
      backoff_initial_seconds = coalesce($6::double precision, backoff_initial_seconds),
      backoff_max_seconds = coalesce($7::double precision, backoff_max_seconds),
      retention_seconds = coalesce($8::integer, retention_seconds),
      max_payload_bytes = coalesce($9::integer, max_payload_bytes),
      archive_seconds = coalesce($10::integer, archive_seconds),
      max_in_flight = CASE WHEN $11::boolean THEN $12::integer ELSE max_in_flight END,
      rate_limit_count = CASE WHEN $13::boolean THEN $14::integer ELSE rate_limit_count END,
      rate_limit_per_seconds = CASE WHEN $13::boolean THEN $15::double precision
                                    ELSE rate_limit_per_seconds END,
      group_max_in_flight = CASE WHEN $16::boolean THEN $17::integer
                                 ELSE group_max_in_flight END,
      group_rate_limit_count = CASE WHEN $18::boolean THEN $19::integer
                                    ELSE group_rate_limit_count END,
      group_rate_limit_per_seconds = CASE WHEN $18::boolean THEN $20::double precision
                                          ELSE group_rate_limit_per_seconds END,
      updated_at = now()
  WHERE name = $1
  RETURNING *`,
);

/** Pauses or resumes queue $1. No row: no such queue. */
export const QueueSetPaused = new Statement<QueueRow, [name: string, paused: boolean]>(
  'QueueSetPaused',
  `UPDATE holdline.queues SET paused = $2, updated_at = now() WHERE name = $1 RETURNING *`,
);

/** Queue $1, or no row. */
export const QueueGetByName = new Statement<QueueRow, [name: string]>(
  'QueueGetByName',
  `SELECT * FROM holdline.queues WHERE name = $1`,
);

/** Every queue by name. */
export const QueueList = new Statement<QueueRow, []>(
  'QueueList',
  `SELECT * FROM holdline.queues ORDER BY name`,
);

/**
 * Takes queue $1's lock exclusively until the transaction ends: senders hold it shared until
 * they commit (holdline.wake), so this waits for sends in flight. Namespace 'HLQU'.
 */
export const QueueLock = new Statement<never, [namespace: number, name: string]>(
  'QueueLock',
  `SELECT pg_advisory_xact_lock($1::int, hashtext($2))`,
);

/**
 * Takes queue $2's lock shared until the transaction ends, as a send does (holdline.wake):
 * deleteQueue, which takes it exclusively, then waits for the transaction, so messages put
 * into the queue under it are never left behind by a delete.
 */
export const QueueLockShared = new Statement<never, [namespace: number, name: string]>(
  'QueueLockShared',
  `SELECT pg_advisory_xact_lock_shared($1::int, hashtext($2))`,
);

/** Wakes consumers idle-waiting on queue $1 anywhere, at commit (holdline.wake, 0002). */
export const QueueWake = new Statement<never, [name: string]>(
  'QueueWake',
  `SELECT holdline.wake($1)`,
);

/**
 * As {@link QueueLock}, but gives up after $1 (a lock_timeout text such as '100ms') with
 * SQLSTATE 55P03; run on the LISTEN connection outside a transaction.
 */
export const QueueLockWithTimeout = new Statement<
  never,
  [lockTimeout: string, namespace: number, name: string]
>(
  'QueueLockWithTimeout',
  `SELECT set_config('lock_timeout', $1, true), pg_advisory_xact_lock($2::int, hashtext($3))`,
);

/** Deletes queue $1 (its messages, waiting consumers and dequeue counts are separate); rowCount. */
export const QueueDelete = new Statement<never, [name: string]>(
  'QueueDelete',
  `DELETE FROM holdline.queues WHERE name = $1`,
);

/** Counts of queue $1's messages by state (the holdline.queue_stats view), or no row. */
export const QueueStatsGet = new Statement<QueueStatsView, [queue: string]>(
  'QueueStatsGet',
  `SELECT * FROM holdline.queue_stats WHERE queue = $1`,
);

/** Queue $1's unleased messages by the reason they wait (holdline.queue_waiting, 0021), or no row. */
export const QueueWaitingGet = new Statement<QueueWaitingView, [queue: string]>(
  'QueueWaitingGet',
  `SELECT * FROM holdline.queue_waiting WHERE queue = $1`,
);

/**
 * When queue $1's rate limit, as its last charges left it, has its next whole token: the
 * milliseconds from now (0: due already) and the charge it follows (the stripe and its
 * refilled_at, as text, which name that bucket state). The soonest of the stripes (0031)
 * whose last charge left less than a whole token. No row when none did (no stripe held back
 * the receives that charged it), when the bucket was never charged, or without a rate limit.
 * Judged from the charge, not from now, so that a token arriving between a receive and this
 * read still gets its wake-up.
 */
export const QueueRateLimitNextToken = new Statement<
  { delay_ms: number; charged_at: string },
  [queue: string]
>(
  'QueueRateLimitNextToken',
  `
  SELECT greatest(0, extract(epoch FROM
           b.refilled_at + make_interval(
             secs => (1 - b.tokens) * q.rate_limit_per_seconds * s.n / q.rate_limit_count)
           - clock_timestamp()) * 1000)::float8 AS delay_ms,
         b.stripe || '@' || b.refilled_at::text AS charged_at
  FROM holdline.queues q
  CROSS JOIN LATERAL holdline.flow_stripes(q.max_in_flight, q.rate_limit_count) s(n)
  JOIN holdline.rate_limit_buckets b ON b.queue = q.name AND b.stripe < s.n
  WHERE q.name = $1 AND q.rate_limit_count IS NOT NULL AND b.tokens < 1
  ORDER BY delay_ms
  LIMIT 1`,
);

/**
 * As {@link QueueRateLimitNextToken}, for queue $1's per-group rate limit (0033): the soonest
 * group whose last charge left its bucket less than a whole token, leaving out the charge $2
 * (the one a timer was last set for) and charges whose token came more than 50 ms ago (that
 * group has its token again; the margin covers a token arriving between a receive and this
 * read). The key names the group and its charge.
 */
export const QueueGroupRateLimitNextToken = new Statement<
  { delay_ms: number; charged_at: string },
  [queue: string, exceptCharge: string | null]
>(
  'QueueGroupRateLimitNextToken',
  `
  SELECT greatest(0, extract(epoch FROM d.due - clock_timestamp()) * 1000)::float8 AS delay_ms,
         d.charged_at
  FROM (
    SELECT b.refilled_at + make_interval(
             secs => (1 - b.tokens) * q.group_rate_limit_per_seconds / q.group_rate_limit_count)
             AS due,
           b.group_key || '@' || b.refilled_at::text AS charged_at
    FROM holdline.queues q
    JOIN holdline.group_rate_limit_buckets b ON b.queue = q.name
    WHERE q.name = $1 AND q.group_rate_limit_count IS NOT NULL AND b.tokens < 1
  ) d
  WHERE d.due > clock_timestamp() - interval '50 milliseconds'
    AND d.charged_at IS DISTINCT FROM $2
  ORDER BY d.due
  LIMIT 1`,
);

/**
 * Deletes the group buckets (0033) that are full again as of $1 (NULL: now()), and those of
 * queues without a per-group rate limit: no row is a full bucket, so only groups charged
 * recently keep one. A receive charging a group meanwhile holds its row, and the delete then
 * judges the charged row.
 */
export const GroupRateLimitBucketDeleteFull = new Statement<never, [now: Date | null]>(
  'GroupRateLimitBucketDeleteFull',
  `
  DELETE FROM holdline.group_rate_limit_buckets b
  USING holdline.queues q
  WHERE q.name = b.queue
    AND (q.group_rate_limit_count IS NULL
         OR b.tokens + greatest(0, extract(epoch FROM coalesce($1::timestamptz, now())
                                                      - b.refilled_at))
                       * q.group_rate_limit_count / q.group_rate_limit_per_seconds
            >= q.group_rate_limit_count)`,
);

/** Counts of every queue by state, by name. */
export const QueueStatsList = new Statement<QueueStatsView, []>(
  'QueueStatsList',
  `SELECT * FROM holdline.queue_stats ORDER BY queue`,
);
