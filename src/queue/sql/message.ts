/**
 * The engine's statements on holdline.messages (and the SQL functions that write it). One
 * named statement each, Noun+Verb; the operations in src/queue call these and nothing else
 * names the table. Timestamps of hot results come as epoch milliseconds (see epochMs).
 */
import type { MessageRow } from './tables.ts';
import type { WaitingReason } from '../types.ts';
import { Statement } from '../../db/statement.ts';

/**
 * SQL for a timestamptz expression as whole epoch milliseconds: a float8, which pg reads with
 * parseFloat, where a timestamptz text costs pg's date parser per value (a tenth of a
 * draining consumer's CPU). Floored in numeric, exactly, as pg's own parse truncates to the
 * millisecond; a float8 product could land a hair below a whole millisecond.
 */
export function epochMs(timestamp: string): string {
  return `floor(extract(epoch FROM ${timestamp}) * 1000)::float8`;
}

/** A leased row as MessageLeaseMany selects it: timestamps as epoch milliseconds. */
export type LeasedMessageRow = Omit<
  MessageRow,
  'run_at' | 'lease_expires_at' | 'dead_lettered_at' | 'created_at'
> & {
  run_at_ms: number;
  lease_expires_at_ms: number;
  created_at_ms: number;
  dead_lettered_at_ms: number | null;
};

/**
 * Leases up to $2 deliverable messages of queue $1 for $3 seconds (NULL: the queue's
 * visibility timeout) as of $4 (NULL: now()), through holdline.receive: a CTE with FOR
 * UPDATE SKIP LOCKED over messages_ready_idx (migrations/0001, 0006).
 */
export const MessageLeaseMany = new Statement<
  LeasedMessageRow,
  [queue: string, max: number, visibilityTimeoutSeconds: number | null, now: Date | null]
>(
  'MessageLeaseMany',
  `
  SELECT m.id, m.queue, m.payload, m.headers, m.priority, m.attempts, m.lease_token,
         m.dedup_key, m.group_key, m.origin_queue, m.last_error,
         ${epochMs('m.run_at')} AS run_at_ms,
         ${epochMs('m.lease_expires_at')} AS lease_expires_at_ms,
         ${epochMs('m.created_at')} AS created_at_ms,
         ${epochMs('m.dead_lettered_at')} AS dead_lettered_at_ms
  FROM holdline.receive($1, $2::integer, $3::integer, $4::timestamptz) AS m`,
  { prepared: true },
);

/** Deletes one delivery fenced by its lease token (holdline.ack, migrations/0007). No row: lease lost. */
export const MessageAck = new Statement<
  { queue: string; ageSeconds: number },
  [id: string, leaseToken: string]
>(
  'MessageAck',
  `SELECT queue, age_seconds AS "ageSeconds" FROM holdline.ack($1::bigint, $2::uuid)`,
  { prepared: true },
);

/** Deletes many deliveries, each fenced by its lease token (holdline.ack_batch); rows acked. */
export const MessageAckMany = new Statement<
  { queue: string; ageSeconds: number },
  [ids: string[], leaseTokens: string[]]
>(
  'MessageAckMany',
  `SELECT queue, age_seconds AS "ageSeconds" FROM holdline.ack_batch($1::bigint[], $2::uuid[])`,
  { prepared: true },
);

/**
 * Deletes many deliveries, each fenced by its lease token and kept to the queues matching $3
 * (LIKE patterns; NULL: any queue) (holdline.ack_batch, 0008); a row per message acked, with
 * its id, so that callers whose acks were coalesced into one statement each find theirs.
 */
export const MessageAckManyInQueues = new Statement<
  { id: string; queue: string; ageSeconds: number },
  [ids: string[], leaseTokens: string[], queuePatterns: string[] | null]
>(
  'MessageAckManyInQueues',
  `SELECT id::text AS id, queue, age_seconds AS "ageSeconds"
     FROM holdline.ack_batch($1::bigint[], $2::uuid[], $3::text[])`,
  { prepared: true },
);

/**
 * Acks deliveries of one caller kept to some queues (LIKE patterns): all those whose lease
 * holds, or none when one of them is outside the patterns, which raises HL403 naming its queue
 * in the DETAIL (holdline.ack_batch_within, 0025).
 */
export const MessageAckManyWithin = new Statement<
  { id: string; queue: string; ageSeconds: number },
  [ids: string[], leaseTokens: string[], queuePatterns: string[]]
>(
  'MessageAckManyWithin',
  `SELECT id::text AS id, queue, age_seconds AS "ageSeconds"
     FROM holdline.ack_batch_within($1::bigint[], $2::uuid[], $3::text[])`,
  { prepared: true },
);

/**
 * The queue of a message whose lease $2 still holds, if it does: after an ack kept to some
 * queues left a delivery alone, whether it was outside them (a row) or lost (none).
 */
export const MessageGetQueueByLease = new Statement<
  { queue: string },
  [id: string, leaseToken: string]
>(
  'MessageGetQueueByLease',
  `SELECT queue FROM holdline.messages WHERE id = $1::bigint AND lease_token = $2::uuid`,
);

/** Sets a lease to end $3 seconds after $4 (NULL: now()), fenced (holdline.extend_lease). */
export const MessageExtendLease = new Statement<
  MessageRow,
  [id: string, leaseToken: string, seconds: number, now: Date | null]
>(
  'MessageExtendLease',
  `SELECT * FROM holdline.extend_lease($1::bigint, $2::uuid, $3::integer, $4::timestamptz)`,
  { prepared: true },
);

/**
 * Whether message $1 is leased, and whether it is a dead letter; no row when it is gone. Read
 * only after a fenced statement matched no lease, to say why (src/queue/lease-lost.ts): not
 * prepared, as it is off the hot path. Uses the primary key.
 */
export const MessageGetLeaseState = new Statement<
  { leased: boolean; dead_lettered: boolean },
  [id: string]
>(
  'MessageGetLeaseState',
  `
  SELECT m.lease_token IS NOT NULL AS leased, m.dead_lettered_at IS NOT NULL AS dead_lettered
  FROM holdline.messages m
  WHERE m.id = $1::bigint`,
);

/** Fails one delivery, fenced: retry with backoff or dead-letter (holdline.nack, 0002). */
export const MessageNack = new Statement<
  { outcome: 'retried' | 'dead_lettered'; queue: string },
  [
    id: string,
    leaseToken: string,
    delaySeconds: number | null,
    error: string | null,
    now: Date | null,
  ]
>(
  'MessageNack',
  `SELECT * FROM holdline.nack($1::bigint, $2::uuid, $3::double precision, $4::text,
                              $5::timestamptz)`,
  { prepared: true },
);

/**
 * Inserts one message without a dedup key (holdline.send_at, 0004); returns its id and the
 * transaction's now(), which the row's created_at defaults to.
 */
export const MessageInsert = new Statement<
  { id: string; created_at_ms: number },
  [
    queue: string,
    payloadJson: string,
    runAt: Date | null,
    priority: number | null,
    groupKey: string | null,
    headersJson: string | null,
  ]
>(
  'MessageInsert',
  `
  SELECT holdline.send_at($1, $2::jsonb, $3::timestamptz, $4::integer, NULL, $5::text,
                          $6::jsonb) AS id,
         ${epochMs('now()')} AS created_at_ms`,
  { prepared: true },
);

/** Inserts a batch without dedup keys, given as one JSON array (holdline.send_many, 0005). */
export const MessageInsertMany = new Statement<
  { ids: string[]; created_at_ms: number },
  [queue: string, messagesJson: string]
>(
  'MessageInsertMany',
  `SELECT holdline.send_many($1, $2::jsonb) AS ids, ${epochMs('now()')} AS created_at_ms`,
  { prepared: true },
);

/**
 * Inserts a batch with dedup keys (holdline.send_batch, 0002), one array per column; returns
 * each row sent, or the live message that already held the dedup key.
 */
export const MessageInsertManyDeduplicated = new Statement<
  MessageRow,
  [
    queue: string,
    payloadsJson: string[],
    runAts: (Date | null)[],
    priorities: (number | null)[],
    dedupKeys: (string | null)[],
    groupKeys: (string | null)[],
    headersJson: (string | null)[],
  ]
>(
  'MessageInsertManyDeduplicated',
  `
  SELECT * FROM holdline.send_batch($1, $2::jsonb[], $3::timestamptz[], $4::integer[],
                                    $5::text[], $6::text[], $7::jsonb[])`,
);

/**
 * Inserts one message with a dedup key (holdline.send_one, 0009); returns the row sent, or the
 * live message that already held the key. Over the payload limit it says "the payload is N
 * bytes", as a single send should, where send_batch names the message's position.
 */
export const MessageInsertOneDeduplicated = new Statement<
  MessageRow,
  [
    queue: string,
    payloadJson: string,
    runAt: Date | null,
    priority: number | null,
    dedupKey: string,
    groupKey: string | null,
    headersJson: string | null,
  ]
>(
  'MessageInsertOneDeduplicated',
  `
  SELECT * FROM holdline.send_one($1, $2::jsonb, $3::timestamptz, $4::integer, $5::text,
                                  $6::text, $7::jsonb)`,
);

/** Copies one message into every queue bound to a pattern matching topic $1, by queue name. */
export const MessagePublish = new Statement<
  MessageRow,
  [
    topic: string,
    payloadJson: string,
    runAt: Date | null,
    priority: number | null,
    dedupKey: string | null,
    groupKey: string | null,
    headersJson: string | null,
  ]
>(
  'MessagePublish',
  `
  SELECT m.* FROM holdline.bound_queues($1) AS q(name)
  CROSS JOIN LATERAL holdline.send_batch(
    q.name, ARRAY[$2::jsonb], ARRAY[$3::timestamptz], ARRAY[$4::integer], ARRAY[$5::text],
    ARRAY[$6::text], ARRAY[$7::jsonb]) AS m
  ORDER BY q.name`,
);

/** Moves up to $2 dead letters from queue $1 back (holdline.redrive, 0002); how many moved. */
export const MessageRedrive = new Statement<{ moved: number }, [queue: string, max: number]>(
  'MessageRedrive',
  `SELECT holdline.redrive($1, $2::integer) AS moved`,
);

/**
 * One message with, when ready at $2 (NULL: now()), how many ready messages precede it, its
 * queue's deliveries per second over the last $3 seconds (holdline.dequeue_counts), and why
 * it waits with when it will next be eligible (holdline.waiting_reason, 0021).
 */
export const MessageGetWithPosition = new Statement<
  MessageRow & {
    position: string | null;
    deliveries_per_second: number | null;
    waiting_reason: WaitingReason | null;
    next_eligible_at: Date | null;
  },
  [id: string, now: Date | null, rateWindowSeconds: number]
>(
  'MessageGetWithPosition',
  `
  WITH clock AS (SELECT coalesce($2::timestamptz, now()) AS now)
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
            AND d.minute >= clock.now - make_interval(secs => $3)
         ) AS deliveries_per_second,
         w.reason AS waiting_reason,
         w.next_eligible_at
  FROM holdline.message_get($1::bigint) m
  CROSS JOIN clock
  LEFT JOIN LATERAL holdline.waiting_reason(m.id, clock.now) w ON true`,
);

/** The parameters of {@link messageSelection}, in order (src/queue/message-filter.ts). */
export type MessageSelectionParams = [
  state: 'READY' | 'DELAYED' | 'LEASED' | null,
  payloadJson: string | null,
  headersJson: string | null,
  groupKey: string | null,
  dedupKey: string | null,
  createdAfter: Date | null,
  createdBefore: Date | null,
];

/**
 * The predicate of a message selection on alias m, its seven parameters from $`first` on (see
 * MessageSelectionParams): the state judged at the statement's now() (NULL: any), payload and
 * headers containment, group key, dedup key, created_at from (inclusive) and before. Parts
 * left NULL fold away when the statement is planned with its values (these statements run
 * unnamed, so each is), leaving a group or dedup key free to use messages_group_idx or
 * messages_dedup_idx (migrations/0001). Containment has no index: a GIN index on payload
 * would tax every send for the sake of browsing.
 */
export function messageSelection(first: number): string {
  const p = (offset: number): string => `$${first + offset}`;
  return `
    CASE ${p(0)}::text
      WHEN 'LEASED' THEN m.lease_token IS NOT NULL
      WHEN 'READY' THEN m.lease_token IS NULL AND m.run_at <= now()
      WHEN 'DELAYED' THEN m.lease_token IS NULL AND m.run_at > now()
      ELSE true
    END
    AND (${p(1)}::jsonb IS NULL OR m.payload @> ${p(1)}::jsonb)
    AND (${p(2)}::jsonb IS NULL OR m.headers @> ${p(2)}::jsonb)
    AND (${p(3)}::text IS NULL OR m.group_key = ${p(3)}::text)
    AND (${p(4)}::text IS NULL OR m.dedup_key = ${p(4)}::text)
    AND (${p(5)}::timestamptz IS NULL OR m.created_at >= ${p(5)}::timestamptz)
    AND (${p(6)}::timestamptz IS NULL OR m.created_at < ${p(6)}::timestamptz)`;
}

/**
 * One page of queue $1's messages in id order after id $3 (NULL: from the start), $2 at
 * most, matching the selection from $4 (see messageSelection), states judged at the
 * statement's now() (returned as observed_at). Walks the primary key from the cursor (there
 * is no (queue, id) index): for browsing, not for polling.
 */
export const MessageListPage = new Statement<
  MessageRow & { observed_at: Date },
  [queue: string, first: number, after: string | null, ...selection: MessageSelectionParams]
>(
  'MessageListPage',
  `
  SELECT m.*, now() AS observed_at
  FROM holdline.messages m
  WHERE m.queue = $1
    AND ($3::bigint IS NULL OR m.id > $3::bigint)
    AND ${messageSelection(4)}
  ORDER BY m.id
  LIMIT $2::integer`,
);

/**
 * How many of queue $1's messages match the selection from $3, counting no further than $2:
 * the scan stops at the $2-th match, so the cost is bounded by it (a range of the queue's
 * messages, read from the heap, as containment has no index).
 */
export const MessageCountMatching = new Statement<
  { matching: number },
  [queue: string, max: number, ...selection: MessageSelectionParams]
>(
  'MessageCountMatching',
  `
  SELECT count(*)::integer AS matching
  FROM (SELECT FROM holdline.messages m
        WHERE m.queue = $1 AND ${messageSelection(3)}
        LIMIT $2::integer) AS matched`,
);

/**
 * Deletes every message of queue $1, leased ones included: a TRUNCATE of its partition when
 * the lock comes at once, else a DELETE (holdline.purge_queue, migrations/0040); how many.
 */
export const MessagePurgeByQueue = new Statement<{ purged: string }, [queue: string]>(
  'MessagePurgeByQueue',
  `SELECT holdline.purge_queue($1)::text AS purged`,
);

/**
 * Removes the messages of queue $1, which is being deleted in this transaction: its partition
 * dropped, or emptied when that would wait for the lock or another queue names it as its
 * dead-letter queue (holdline.delete_queue_messages, migrations/0040).
 */
export const MessageDeleteByQueue = new Statement<never, [queue: string]>(
  'MessageDeleteByQueue',
  `SELECT holdline.delete_queue_messages($1)`,
);

/**
 * The reaper's pass over expired leases as of $2 (NULL: now()), $1 at most: requeued with
 * backoff or dead-lettered (holdline.reap_expired_leases, 0002); counts per queue and outcome.
 */
export const MessageReapExpiredLeases = new Statement<
  { queue: string; dead_letter_queue: string | null; messages: number },
  [limit: number, now: Date | null]
>(
  'MessageReapExpiredLeases',
  `SELECT * FROM holdline.reap_expired_leases($1::integer, $2::timestamptz)`,
);

/** Deletes unleased messages older than their queue's retention as of $1 (NULL: now()). */
export const MessageDeleteExpired = new Statement<never, [now: Date | null]>(
  'MessageDeleteExpired',
  `
  DELETE FROM holdline.messages m
  USING holdline.queues q
  WHERE q.name = m.queue AND m.lease_token IS NULL
    AND m.created_at < coalesce($1::timestamptz, now()) - make_interval(secs => q.retention_seconds)`,
);

/**
 * Dead row versions of holdline.messages, over its partitions (one per queue, migrations/0040),
 * and whether a vacuum of one of them is running.
 */
export const MessageTableVacuumState = new Statement<
  { dead_tuples: string; vacuum_running: boolean },
  []
>(
  'MessageTableVacuumState',
  `
  SELECT coalesce(sum(s.n_dead_tup), 0)::text AS dead_tuples,
         coalesce(bool_or(p.relid IS NOT NULL), false) AS vacuum_running
  FROM pg_inherits i
  LEFT JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
  LEFT JOIN pg_stat_progress_vacuum p ON p.relid = i.inhrelid
  WHERE i.inhparent = 'holdline.messages'::regclass`,
);

/**
 * Vacuums holdline.messages, partition by partition, skipping those whose lock another vacuum
 * holds (SKIP_LOCKED). Needs a connection outside any transaction.
 */
export const MessageTableVacuum = new Statement<never, []>(
  'MessageTableVacuum',
  `VACUUM (SKIP_LOCKED) holdline.messages`,
);
