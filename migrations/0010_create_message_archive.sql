-- 0010: the archive. Queues get archive_seconds (0, the default: off). A queue with it on has
-- each acked message moved into holdline.message_archive by the ack itself, in the same
-- statement (holdline.ack and both holdline.ack_batch, replaced here with the same signatures
-- and results). The archive is partitioned by acked_at, one partition per UTC day by default
-- (ARCHIVE_PARTITION_SECONDS), created ahead and dropped whole by the leader (holdline.archive_create_partitions,
-- holdline.archive_drop_partitions): its rows are never deleted one by one, so it never
-- bloats. Read it through the view holdline.archived_messages, which honours each queue's
-- retention.
-- Dead-lettered and purged messages are not archived: the archive holds what consumers
-- finished, the history a replay re-runs; a dead letter is still a live message in its DLQ.
-- Locks: ACCESS EXCLUSIVE on holdline.queues for the instant of adding a column with a
-- constant default (no rewrite); otherwise only objects it creates and functions it replaces.

ALTER TABLE holdline.queues
  ADD COLUMN archive_seconds integer NOT NULL DEFAULT 0
    CHECK (archive_seconds BETWEEN 0 AND 31536000);

-- "Does any queue archive?": the acks' first question, answered from this index alone (empty
-- while no queue archives), however many queues there are.
CREATE INDEX queues_archiving_idx ON holdline.queues (name) WHERE archive_seconds > 0;

-- Acked messages of archiving queues. Insert-only: rows leave only with their whole
-- partition. `id` is the id the message had while live (unique: a message is acked once).
CREATE TABLE holdline.message_archive (
  id bigint NOT NULL,
  queue text NOT NULL,
  payload jsonb NOT NULL,
  headers jsonb,
  priority integer NOT NULL,
  attempts integer NOT NULL,
  group_key text,
  -- the message's created_at: the start of the transaction that sent it
  sent_at timestamptz NOT NULL,
  acked_at timestamptz NOT NULL
) PARTITION BY RANGE (acked_at);

-- Browse and replay: one queue's archive in send order (id), from a cursor.
CREATE INDEX message_archive_queue_id_idx ON holdline.message_archive (queue, id);

-- Where an ack lands when no day partition covers its time: only when the leader has not run
-- for days (or the service never ran: acks from plain SQL). archive_create_partitions moves
-- such rows into their day's partition when it creates it; an ack never fails for want of a
-- partition.
CREATE TABLE holdline.message_archive_default PARTITION OF holdline.message_archive DEFAULT;

-- The partitions that exist, with their bounds: the leader's own bookkeeping, so that it
-- never parses bounds back out of the catalog.
CREATE TABLE holdline.message_archive_partitions (
  partition_name text PRIMARY KEY,
  starts_at timestamptz NOT NULL UNIQUE,
  ends_at timestamptz NOT NULL,
  CHECK (ends_at > starts_at)
);

-- Creates the missing partitions of holdline.message_archive, each p_width_seconds wide
-- (default a UTC day; 60 to 604,800, aligned to the epoch), from the one holding p_now
-- (default now()), or the oldest with rows waiting in the default partition, through
-- p_ahead partitions after p_now's. Rows of the default partition move into their
-- partition as it is created (the only DELETE the archive ever sees, and only after the
-- leader was away). A range that overlaps a partition of another width is skipped: a new
-- width takes over as the old partitions end. Returns the names created. Serialised by an
-- advisory lock (replay batches take it shared: see replay_batch, 0011); waits at most 2 s
-- for a lock. Attaching takes SHARE UPDATE EXCLUSIVE on holdline.message_archive (acks go on).
CREATE FUNCTION holdline.archive_create_partitions(
  p_ahead integer DEFAULT 2, p_now timestamptz DEFAULT NULL, p_width_seconds integer DEFAULT 86400
) RETURNS SETOF text
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_width interval := make_interval(secs => p_width_seconds);
  v_start timestamptz;
  v_end timestamptz;
  v_last timestamptz;
  v_name text;
BEGIN
  IF p_ahead IS NULL OR p_ahead NOT BETWEEN 0 AND 1000 THEN
    RAISE EXCEPTION 'ahead must be between 0 and 1000, got %', p_ahead USING ERRCODE = 'HL400';
  END IF;
  IF p_width_seconds IS NULL OR p_width_seconds NOT BETWEEN 60 AND 604800 THEN
    RAISE EXCEPTION 'width_seconds must be between 60 and 604800, got %', p_width_seconds
      USING ERRCODE = 'HL400';
  END IF;
  -- 'HLQU', key 2: one partition maintainer at a time.
  PERFORM pg_advisory_xact_lock(1212961868, 2);
  -- Partition bounds are whole multiples of the width since the epoch (midnights UTC for a day).
  v_last := to_timestamp(floor(extract(epoch FROM v_now) / p_width_seconds) * p_width_seconds)
            + v_width * p_ahead;
  SELECT to_timestamp(floor(extract(epoch FROM least(v_now, min(d.acked_at))) / p_width_seconds)
                      * p_width_seconds)
    INTO v_start FROM holdline.message_archive_default d;
  WHILE v_start <= v_last LOOP
    v_end := v_start + v_width;
    IF NOT EXISTS (SELECT FROM holdline.message_archive_partitions p
                   WHERE p.starts_at < v_end AND p.ends_at > v_start) THEN
      v_name := 'message_archive_' || to_char(v_start AT TIME ZONE 'UTC',
        CASE WHEN p_width_seconds % 86400 = 0 THEN 'YYYYMMDD' ELSE 'YYYYMMDD"_"HH24MISS' END);
      EXECUTE format('CREATE TABLE holdline.%I (LIKE holdline.message_archive INCLUDING DEFAULTS)',
                     v_name);
      EXECUTE format(
        'WITH moved AS (DELETE FROM holdline.message_archive_default d
                        WHERE d.acked_at >= $1 AND d.acked_at < $2 RETURNING d.*)
         INSERT INTO holdline.%I SELECT * FROM moved', v_name)
        USING v_start, v_end;
      -- Bounds written as UTC text, whatever the session's DateStyle and TimeZone.
      EXECUTE format('ALTER TABLE holdline.message_archive ATTACH PARTITION holdline.%I
                      FOR VALUES FROM (%L) TO (%L)', v_name,
                     to_char(v_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'),
                     to_char(v_end AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'));
      INSERT INTO holdline.message_archive_partitions (partition_name, starts_at, ends_at)
      VALUES (v_name, v_start, v_end);
      RETURN NEXT v_name;
    END IF;
    v_start := v_end;
  END LOOP;
END
$$;

-- Drops, whole, every partition that ended longer ago (as of p_now, default now()) than
-- the longest archive_seconds of the queues with rows in it; a queue deleted since, or with
-- its archive turned off, keeps nothing. Returns the names dropped. Never DELETEs a row.
-- Dropping a partition takes ACCESS EXCLUSIVE on holdline.message_archive for an instant
-- (archiving acks wait that long); lock_timeout 2 s keeps it from queueing behind a long
-- transaction, and a partition not dropped now is dropped at the next pass.
CREATE FUNCTION holdline.archive_drop_partitions(p_now timestamptz DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql
SET lock_timeout = '2s'
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_partition holdline.message_archive_partitions;
  v_keep_seconds integer;
BEGIN
  PERFORM pg_advisory_xact_lock(1212961868, 2);
  FOR v_partition IN
    SELECT * FROM holdline.message_archive_partitions p WHERE p.ends_at <= v_now ORDER BY p.starts_at
  LOOP
    -- One probe of the partition's (queue, id) index per archiving queue.
    EXECUTE format(
      'SELECT coalesce(max(q.archive_seconds), 0) FROM holdline.queues q
       WHERE q.archive_seconds > 0
         AND EXISTS (SELECT FROM holdline.%I a WHERE a.queue = q.name)', v_partition.partition_name)
      INTO v_keep_seconds;
    IF v_partition.ends_at + make_interval(secs => v_keep_seconds) <= v_now THEN
      EXECUTE format('DROP TABLE holdline.%I', v_partition.partition_name);
      DELETE FROM holdline.message_archive_partitions p
      WHERE p.partition_name = v_partition.partition_name;
      RETURN NEXT v_partition.partition_name;
    END IF;
  END LOOP;
END
$$;

-- The acks, now archiving. A queue with archive_seconds > 0 has each acked message inserted
-- into the archive by the DELETE's own statement (a data-modifying CTE): no second round trip,
-- and the message is in the archive exactly when it is gone from the queue.
--
-- While no queue archives, the first statement finds that from the empty partial index
-- queues_archiving_idx and the ack runs the same DELETE as in 0007/0008: the archive costs
-- an ack nothing it does not use. The check and the DELETE are two statements, so a queue
-- whose archive is turned on in between has that ack unarchived: the setting takes effect
-- for acks that start after it commits.

CREATE OR REPLACE FUNCTION holdline.ack(p_id bigint, p_lease_token uuid)
RETURNS TABLE (queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.archive_seconds > 0) THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    WHERE m.id = p_id AND m.lease_token = p_lease_token
    RETURNING m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
    RETURN;
  END IF;
  RETURN QUERY
  WITH acked AS (
    DELETE FROM holdline.messages m
    WHERE m.id = p_id AND m.lease_token = p_lease_token
    RETURNING m.*
  ), archived AS (
    INSERT INTO holdline.message_archive
      (id, queue, payload, headers, priority, attempts, group_key, sent_at, acked_at)
    SELECT k.id, k.queue, k.payload, k.headers, k.priority, k.attempts, k.group_key,
           k.created_at, now()
    FROM acked k JOIN holdline.queues q ON q.name = k.queue
    WHERE q.archive_seconds > 0
  )
  SELECT k.queue, extract(epoch FROM clock_timestamp() - k.created_at)::double precision
  FROM acked k;
END
$$;

CREATE OR REPLACE FUNCTION holdline.ack_batch(p_ids bigint[], p_lease_tokens uuid[])
RETURNS TABLE (id bigint, queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.archive_seconds > 0) THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.id = r.id AND m.lease_token = r.lease_token
    RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
    RETURN;
  END IF;
  RETURN QUERY
  WITH acked AS (
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.id = r.id AND m.lease_token = r.lease_token
    RETURNING m.*
  ), archived AS (
    INSERT INTO holdline.message_archive
      (id, queue, payload, headers, priority, attempts, group_key, sent_at, acked_at)
    SELECT k.id, k.queue, k.payload, k.headers, k.priority, k.attempts, k.group_key,
           k.created_at, now()
    FROM acked k JOIN holdline.queues q ON q.name = k.queue
    WHERE q.archive_seconds > 0
  )
  SELECT k.id, k.queue, extract(epoch FROM clock_timestamp() - k.created_at)::double precision
  FROM acked k;
END
$$;

CREATE OR REPLACE FUNCTION holdline.ack_batch(
  p_ids bigint[], p_lease_tokens uuid[], p_queue_patterns text[]
) RETURNS TABLE (id bigint, queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.archive_seconds > 0) THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.id = r.id AND m.lease_token = r.lease_token
      AND (p_queue_patterns IS NULL OR m.queue LIKE ANY (p_queue_patterns))
    RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
    RETURN;
  END IF;
  RETURN QUERY
  WITH acked AS (
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.id = r.id AND m.lease_token = r.lease_token
      AND (p_queue_patterns IS NULL OR m.queue LIKE ANY (p_queue_patterns))
    RETURNING m.*
  ), archived AS (
    INSERT INTO holdline.message_archive
      (id, queue, payload, headers, priority, attempts, group_key, sent_at, acked_at)
    SELECT k.id, k.queue, k.payload, k.headers, k.priority, k.attempts, k.group_key,
           k.created_at, now()
    FROM acked k JOIN holdline.queues q ON q.name = k.queue
    WHERE q.archive_seconds > 0
  )
  SELECT k.id, k.queue, extract(epoch FROM clock_timestamp() - k.created_at)::double precision
  FROM acked k;
END
$$;

-- The archive as each queue's retention shows it: a message acked longer ago than its queue's
-- archive_seconds is gone here, though its partition may stay a while (partitions go whole,
-- by the longest retention in them). Messages of a queue deleted since are not shown, nor,
-- when a queue of the same name was created again, under the new one.
CREATE VIEW holdline.archived_messages AS
SELECT a.id, a.queue, a.payload, a.headers, a.priority, a.attempts, a.group_key, a.sent_at,
       a.acked_at
FROM holdline.message_archive a
JOIN holdline.queues q ON q.name = a.queue
WHERE a.acked_at > now() - make_interval(secs => q.archive_seconds)
  AND a.acked_at >= q.created_at;
