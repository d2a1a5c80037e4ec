-- 0008: holdline.ack_batch with a third argument, the queues the caller may ack in, as LIKE
-- patterns. A service whose caller may receive only from some queues (a scoped token) then
-- acks in one statement: a delivery of another queue is left alone, as a lost lease is, and
-- the caller tells the two apart afterwards, on that failure path only. Before this, such an
-- ack ran in a transaction of its own (BEGIN, the ack, a check, COMMIT: three round trips
-- more than an ack without scopes).
-- Locks: none beyond creating a function.
--
-- The two-argument holdline.ack_batch of 0007 stays as it is (the SQL contract); this is an
-- overload, chosen by the number of arguments.

-- Acknowledges many deliveries: p_ids[i] with p_lease_tokens[i], each only when its message
-- is in a queue matching one of p_queue_patterns (LIKE, so '%' matches any run of
-- characters and '\_' a literal underscore); NULL patterns: any queue. Returns a row for each
-- message acknowledged; the others are left alone and have no row. The arrays of ids and
-- lease tokens must have the same length (HL400 otherwise). Uses the primary key only.
CREATE FUNCTION holdline.ack_batch(p_ids bigint[], p_lease_tokens uuid[], p_queue_patterns text[])
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
    AND (p_queue_patterns IS NULL OR m.queue LIKE ANY (p_queue_patterns))
  RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
END
$$;
