-- 0032: an ack that frees a slot of a capped queue (max_in_flight) wakes that queue's idle
-- consumers on every instance, as a nack, a reaped lease and a released delivery already did.
-- Before, only consumers in the acking process woke at once; those of other instances found
-- the slot at their next poll (up to the poll interval). Replaces holdline.ack and both
-- holdline.ack_batch (same signatures, same results; holdline.ack_batch_within calls the
-- two-argument one).
-- An uncapped installation pays one probe of an empty partial index per ack statement, as
-- for the archive. For a capped queue the ack reads its rows' queues before deleting them and
-- calls holdline.wake, which takes the queue's wake lock shared and notifies only when a
-- consumer is registered as waiting: a consumer registering meanwhile waits for the ack's
-- commit and then sees the freed slot (the protocol of 0002's sends).
-- Locks: SHARE on holdline.queues while the new index is built (a small table); otherwise
-- only the functions it replaces.

-- "Is any queue capped?": the acks' first question, answered from this index alone.
CREATE INDEX queues_capped_idx ON holdline.queues (name) WHERE max_in_flight IS NOT NULL;

-- The capped queues among those of live leases (ids with their lease tokens); NULL when none.
-- The acks ask only once queues_capped_idx says some queue is capped.
CREATE FUNCTION holdline.capped_queues_of_leases(p_ids bigint[], p_lease_tokens uuid[])
RETURNS text[]
LANGUAGE sql STABLE AS $$
  SELECT array_agg(DISTINCT m.queue)
  FROM unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
  JOIN holdline.messages m ON m.id = r.id AND m.lease_token = r.lease_token
  JOIN holdline.queues q ON q.name = m.queue AND q.max_in_flight IS NOT NULL
$$;

CREATE OR REPLACE FUNCTION holdline.ack(p_id bigint, p_lease_token uuid)
RETURNS TABLE (queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
  v_capped text[];
BEGIN
  IF EXISTS (SELECT FROM holdline.queues c WHERE c.max_in_flight IS NOT NULL) THEN
    v_capped := holdline.capped_queues_of_leases(ARRAY[p_id], ARRAY[p_lease_token]);
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.archive_seconds > 0) THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    WHERE m.id = p_id AND m.lease_token = p_lease_token
    RETURNING m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
  ELSE
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
  END IF;
  PERFORM holdline.wake(c) FROM unnest(v_capped) AS c;
END
$$;

CREATE OR REPLACE FUNCTION holdline.ack_batch(p_ids bigint[], p_lease_tokens uuid[])
RETURNS TABLE (id bigint, queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
  v_capped text[];
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  IF EXISTS (SELECT FROM holdline.queues c WHERE c.max_in_flight IS NOT NULL) THEN
    v_capped := holdline.capped_queues_of_leases(p_ids, p_lease_tokens);
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.archive_seconds > 0) THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.id = r.id AND m.lease_token = r.lease_token
    RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
  ELSE
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
  END IF;
  PERFORM holdline.wake(c) FROM unnest(v_capped) AS c;
END
$$;

CREATE OR REPLACE FUNCTION holdline.ack_batch(
  p_ids bigint[], p_lease_tokens uuid[], p_queue_patterns text[]
) RETURNS TABLE (id bigint, queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
  v_capped text[];
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  IF EXISTS (SELECT FROM holdline.queues c WHERE c.max_in_flight IS NOT NULL) THEN
    -- A queue outside the patterns is left alone, so it is not woken either.
    SELECT array_agg(c) INTO v_capped
    FROM unnest(holdline.capped_queues_of_leases(p_ids, p_lease_tokens)) AS c
    WHERE p_queue_patterns IS NULL OR c LIKE ANY (p_queue_patterns);
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.archive_seconds > 0) THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.id = r.id AND m.lease_token = r.lease_token
      AND (p_queue_patterns IS NULL OR m.queue LIKE ANY (p_queue_patterns))
    RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
  ELSE
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
  END IF;
  PERFORM holdline.wake(c) FROM unnest(v_capped) AS c;
END
$$;
