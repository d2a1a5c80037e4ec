/**
 * The engine's statements on holdline.queue_history (migrations/0030): per queue and minute,
 * what the service instances counted and what the leader sampled. Never on the hot path:
 * each instance writes its counts every few seconds in one statement, the leader samples and
 * prunes, the queueHistory query reads.
 */
import { epochMs } from './message.ts';
import { Statement } from '../../db/statement.ts';

/**
 * Adds counts to the rows of (queue $1[i], minute $2[i] in epoch seconds), creating them as
 * needed: $3..$8 are sent, delivered, acked, nacked, dead-lettered and expired-lease counts,
 * $9 the latency histograms as array texts ('{0,3,1}') or NULL; histograms add up element by
 * element. Rows are written in (queue, minute) order, the order the leader's sample takes
 * too, so concurrent writers lock them in one order and never deadlock. Returns the
 * database clock, from which an instance corrects its own (see history-meter.ts).
 */
export const QueueHistoryAddMany = new Statement<
  { now_ms: number },
  [
    queues: string[],
    minutes: number[],
    sent: number[],
    delivered: number[],
    acked: number[],
    nacked: number[],
    deadLettered: number[],
    leaseExpired: number[],
    latencyBuckets: (string | null)[],
  ]
>(
  'QueueHistoryAddMany',
  `
  WITH counts AS (
    SELECT *
    FROM unnest($1::text[], $2::float8[], $3::bigint[], $4::bigint[], $5::bigint[],
                $6::bigint[], $7::bigint[], $8::bigint[], $9::text[])
      AS c(queue, minute, sent, delivered, acked, nacked, dead_lettered, lease_expired, latency)
  ), written AS (
    INSERT INTO holdline.queue_history AS h
      (queue, minute, sent, delivered, acked, nacked, dead_lettered, lease_expired,
       delivery_latency_buckets)
    SELECT c.queue, to_timestamp(c.minute), c.sent, c.delivered, c.acked, c.nacked,
           c.dead_lettered, c.lease_expired, c.latency::bigint[]
    FROM counts c
    ORDER BY c.queue, c.minute
    ON CONFLICT (queue, minute) DO UPDATE SET
      sent = h.sent + excluded.sent,
      delivered = h.delivered + excluded.delivered,
      acked = h.acked + excluded.acked,
      nacked = h.nacked + excluded.nacked,
      dead_lettered = h.dead_lettered + excluded.dead_lettered,
      lease_expired = h.lease_expired + excluded.lease_expired,
      delivery_latency_buckets = CASE
        WHEN h.delivery_latency_buckets IS NULL THEN excluded.delivery_latency_buckets
        WHEN excluded.delivery_latency_buckets IS NULL THEN h.delivery_latency_buckets
        ELSE ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
                   FROM unnest(h.delivery_latency_buckets, excluded.delivery_latency_buckets)
                     WITH ORDINALITY AS s(a, b, i)
                   ORDER BY s.i)
      END
    RETURNING 1
  )
  SELECT ${epochMs('now()')} AS now_ms FROM (SELECT count(*) FROM written) AS done`,
);

/**
 * Samples every queue's depth (ready + delayed + leased) and oldest ready age into its row
 * of the minute holding $1 (NULL: now()), replacing an earlier sample of that minute: one
 * pass of the holdline.queue_stats view over the messages table. rowCount: queues sampled.
 */
export const QueueHistorySample = new Statement<never, [now: Date | null]>(
  'QueueHistorySample',
  `
  INSERT INTO holdline.queue_history AS h (queue, minute, depth, oldest_ready_age, sampled_at)
  SELECT s.queue, date_trunc('minute', coalesce($1::timestamptz, now()), 'UTC'), s.total,
         s.oldest_ready_age, coalesce($1::timestamptz, now())
  FROM holdline.queue_stats s
  ORDER BY s.queue
  ON CONFLICT (queue, minute) DO UPDATE SET
    depth = excluded.depth,
    oldest_ready_age = excluded.oldest_ready_age,
    sampled_at = excluded.sampled_at`,
);

/**
 * Deletes at most $3 of the oldest rows whose minute is more than $2 seconds before $1
 * (NULL: now()), through queue_history_minute_idx; rowCount: how many.
 */
export const QueueHistoryDeleteOlderThan = new Statement<
  never,
  [now: Date | null, keepSeconds: number, limit: number]
>(
  'QueueHistoryDeleteOlderThan',
  `
  DELETE FROM holdline.queue_history h
  WHERE (h.queue, h.minute) IN (
    SELECT o.queue, o.minute FROM holdline.queue_history o
    WHERE o.minute < coalesce($1::timestamptz, now()) - make_interval(secs => $2)
    ORDER BY o.minute
    LIMIT $3::integer)`,
);

/** Deletes queue $1's history (the queue is being deleted). */
export const QueueHistoryDeleteByQueue = new Statement<never, [queue: string]>(
  'QueueHistoryDeleteByQueue',
  `DELETE FROM holdline.queue_history WHERE queue = $1`,
);

/** One point of {@link QueueHistoryRead}: bucket n's sums and last sample. */
export interface QueueHistoryPointRow {
  n: number;
  sent: number;
  delivered: number;
  acked: number;
  nacked: number;
  dead_lettered: number;
  lease_expired: number;
  depth: number | null;
  oldest_ready_age: number | null;
  /** The bucket's summed latency histogram (bigint[]: strings); null when none was counted. */
  latency_buckets: string[] | null;
}

/**
 * Queue $1's history in $3 buckets of $4 seconds, bucket n starting $2 + n × $4 (epoch
 * seconds): counts summed over the bucket's minutes (0 where none), the depth and oldest
 * ready age of its last sample, and its latency histograms summed element by element. One
 * range of the primary key.
 */
export const QueueHistoryRead = new Statement<
  QueueHistoryPointRow,
  [queue: string, firstEpochSeconds: number, points: number, stepSeconds: number]
>(
  'QueueHistoryRead',
  `
  WITH rows AS (
    SELECT floor((extract(epoch FROM h.minute) - $2::float8) / $4::integer)::integer AS n, h.*
    FROM holdline.queue_history h
    WHERE h.queue = $1
      AND h.minute >= to_timestamp($2::float8)
      AND h.minute < to_timestamp($2::float8 + $3::integer * $4::integer)
  ), sums AS (
    SELECT r.n,
           sum(r.sent) AS sent, sum(r.delivered) AS delivered, sum(r.acked) AS acked,
           sum(r.nacked) AS nacked, sum(r.dead_lettered) AS dead_lettered,
           sum(r.lease_expired) AS lease_expired,
           (array_agg(r.depth ORDER BY r.sampled_at DESC)
              FILTER (WHERE r.sampled_at IS NOT NULL))[1] AS depth,
           (array_agg(r.oldest_ready_age ORDER BY r.sampled_at DESC)
              FILTER (WHERE r.sampled_at IS NOT NULL))[1] AS oldest_ready_age
    FROM rows r
    GROUP BY r.n
  ), latency AS (
    SELECT b.n, array_agg(b.count ORDER BY b.i) AS buckets
    FROM (SELECT r.n, u.i, sum(u.count) AS count
          FROM rows r, unnest(r.delivery_latency_buckets) WITH ORDINALITY AS u(count, i)
          GROUP BY r.n, u.i) AS b
    GROUP BY b.n
  )
  SELECT p.n,
         coalesce(s.sent, 0)::float8 AS sent,
         coalesce(s.delivered, 0)::float8 AS delivered,
         coalesce(s.acked, 0)::float8 AS acked,
         coalesce(s.nacked, 0)::float8 AS nacked,
         coalesce(s.dead_lettered, 0)::float8 AS dead_lettered,
         coalesce(s.lease_expired, 0)::float8 AS lease_expired,
         s.depth::float8 AS depth,
         s.oldest_ready_age,
         l.buckets::bigint[] AS latency_buckets
  FROM generate_series(0, $3::integer - 1) AS p(n)
  LEFT JOIN sums s ON s.n = p.n
  LEFT JOIN latency l ON l.n = p.n
  ORDER BY p.n`,
);
