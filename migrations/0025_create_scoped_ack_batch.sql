-- 0025: holdline.ack_batch_within(ids, lease_tokens, queue_patterns), the batch ack of a
-- token scoped to some queues, as one statement. It acks all the deliveries whose lease holds
-- or none of them: when any of those is in a queue that matches none of the patterns, it
-- raises HL403 with that queue's name as the DETAIL and, being one statement, changes nothing.
-- Before it, a scoped ackBatch ran BEGIN, holdline.ack_batch and COMMIT so that the caller's
-- refusal could roll the batch back: three round trips for the commonest call of a consumer.
-- (The three-argument holdline.ack_batch keeps its per-delivery meaning: coalesced single acks
-- of different callers must not fail one another.)
-- Locks: none beyond creating the function.

CREATE FUNCTION holdline.ack_batch_within(
  p_ids bigint[], p_lease_tokens uuid[], p_queue_patterns text[]
) RETURNS TABLE (id bigint, queue text, age_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
  v_outside text;
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  -- A live lease fixes its message's queue (moving or dead-lettering a message ends its lease),
  -- so what this finds is what the delete below would touch.
  SELECT m.queue INTO v_outside
  FROM holdline.messages m
  JOIN unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    ON m.id = r.id AND m.lease_token = r.lease_token
  WHERE NOT (m.queue LIKE ANY (coalesce(p_queue_patterns, '{}')))
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'a delivery is in a queue outside the caller''s'
      USING ERRCODE = 'HL403', DETAIL = v_outside;
  END IF;
  RETURN QUERY SELECT a.id, a.queue, a.age_seconds FROM holdline.ack_batch(p_ids, p_lease_tokens) a;
END
$$;
