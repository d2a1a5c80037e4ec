-- 0007: the rest of the SQL contract for consumers that speak only SQL: holdline.ack,
-- holdline.ack_batch and holdline.extend_lease, fenced by the lease token exactly as the API
-- is. The engine itself acks and extends through these (src/queue/sql/message.ts), so the
-- SQL contract and the API cannot drift apart.
-- Locks: none beyond creating functions.
--
-- A delivery from holdline.receive carries its message id and lease_token (the API's receipt
-- is '<id>.<lease_token>'). Every function here matches both, so a stale delivery (its lease
-- expired and was reaped, or the message was leased again by someone else) changes nothing
-- and is reported by the absence of its row in the result; it never touches another
-- consumer's delivery. A consumer in SQL:
--
--   SELECT id, lease_token, payload FROM holdline.receive('orders', 10);
--   -- ... work ...
--   SELECT * FROM holdline.ack(42, '6f1c…'::uuid);       -- one row: acked; none: lease lost
--   SELECT * FROM holdline.ack_batch(ARRAY[42, 43], ARRAY['6f1c…', '6f1c…']::uuid[]);
--   SELECT * FROM holdline.extend_lease(42, '6f1c…'::uuid, 60);  -- lease ends 60 s from now
--
-- Nothing here sends a NOTIFY: an ack or an extension makes no message deliverable.

-- Acknowledges one delivery: the message is done and deleted. Returns one row (the queue it
-- was in, and its age from created_at, the start of the sending transaction, to now on the
-- wall clock), or no row when p_lease_token is no longer the message's lease (nothing is
-- changed then). Uses the primary key only.
CREATE FUNCTION holdline.ack(p_id bigint, p_lease_token uuid)
RETURNS TABLE (queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
  DELETE FROM holdline.messages m
  WHERE m.id = p_id AND m.lease_token = p_lease_token
  RETURNING m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
END
$$;

-- Acknowledges many deliveries in one statement: p_ids[i] with p_lease_tokens[i]. Returns a
-- row for each message acknowledged; deliveries whose lease was lost are left alone and have
-- no row. The arrays must have the same length (HL400 otherwise).
CREATE FUNCTION holdline.ack_batch(p_ids bigint[], p_lease_tokens uuid[])
RETURNS TABLE (id bigint, queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  RETURN QUERY
  DELETE FROM holdline.messages m
  USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
  WHERE m.id = r.id AND m.lease_token = r.lease_token
  RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
END
$$;

-- Sets a delivery's lease to end p_seconds (1 to 43,200) after p_now (default now(), the
-- transaction's time): from now, not added to what is left, as SQS ChangeMessageVisibility.
-- The lease token stays the same. Returns the message's row, or no row when p_lease_token is
-- no longer the message's lease (nothing is changed then).
CREATE FUNCTION holdline.extend_lease(
  p_id bigint, p_lease_token uuid, p_seconds integer, p_now timestamptz DEFAULT NULL
) RETURNS SETOF holdline.messages
LANGUAGE plpgsql AS $$
BEGIN
  -- Bounds as in src/queue/validation.ts (LEASE_MAX_SECONDS): below 1 the lease would end
  -- before the call returns, and NULL would clear the expiry of a leased message.
  IF p_seconds IS NULL OR p_seconds NOT BETWEEN 1 AND 43200 THEN
    RAISE EXCEPTION 'seconds must be between 1 and 43200, got %', p_seconds USING ERRCODE = 'HL400';
  END IF;
  RETURN QUERY
  UPDATE holdline.messages m
  SET lease_expires_at = coalesce(p_now, now()) + make_interval(secs => p_seconds)
  WHERE m.id = p_id AND m.lease_token = p_lease_token
  RETURNING m.*;
END
$$;
