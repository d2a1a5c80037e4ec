-- 0006: one lease token per receive instead of one per message. Replaces holdline.receive
-- (same signature, same result, same order).
-- Locks: only the function it replaces.

-- A receipt is '<message id>.<lease token>' and ack, nack and extend match both, so what the
-- token must be is unique per lease of one message, not per row: a random UUID drawn once per
-- receive is that, since two leases of one message are two receives. Everything in one batch
-- goes to the one consumer that received it, so sharing the token across the batch tells
-- that consumer nothing it did not hold already.
--
-- Why: gen_random_uuid() per row was an eighth of the database's CPU in a draining consumer
-- (pgbench, one client, leases of 100 + a batched ack, PostgreSQL 15: 655 batches/s with a
-- UUID per row, 767 with one per batch). Each call reads the OS's random source through
-- OpenSSL.
CREATE OR REPLACE FUNCTION holdline.receive(
  p_queue text,
  p_max integer,
  p_visibility_timeout_seconds integer DEFAULT NULL,
  p_now timestamptz DEFAULT NULL
) RETURNS SETOF holdline.messages
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_queue holdline.queues;
  v_lease_token uuid;
BEGIN
  -- Bounds as in src/queue/validation.ts. Unchecked, NULL would mean no LIMIT (lease the whole
  -- queue) and a timeout below 1 would write leases that have already expired.
  IF p_max IS NULL OR p_max NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'max must be between 1 and 1000, got %', p_max USING ERRCODE = 'HL400';
  END IF;
  IF p_visibility_timeout_seconds NOT BETWEEN 1 AND 43200 THEN
    RAISE EXCEPTION 'visibility_timeout_seconds must be between 1 and 43200, got %',
      p_visibility_timeout_seconds USING ERRCODE = 'HL400';
  END IF;
  SELECT * INTO v_queue FROM holdline.queues WHERE name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue USING ERRCODE = 'HL404';
  END IF;
  IF v_queue.paused THEN
    RETURN;
  END IF;
  v_lease_token := gen_random_uuid();
  RETURN QUERY
  WITH deliverable AS (
    SELECT m.id
    FROM holdline.messages m
    WHERE m.queue = p_queue
      AND m.lease_token IS NULL
      AND m.run_at <= v_now
      AND (m.group_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM holdline.messages earlier
            WHERE earlier.queue = m.queue AND earlier.group_key = m.group_key AND earlier.id < m.id))
    ORDER BY m.priority DESC, m.run_at, m.id
    LIMIT p_max
    FOR UPDATE SKIP LOCKED
  )
  , leased AS (
    UPDATE holdline.messages m
    SET lease_token = v_lease_token,
        lease_expires_at = v_now + make_interval(
          secs => coalesce(p_visibility_timeout_seconds, v_queue.visibility_timeout_seconds)),
        attempts = m.attempts + 1
    FROM deliverable
    WHERE m.id = deliverable.id
    RETURNING m.*
  )
  -- UPDATE ... RETURNING has no order of its own; a batch is handed out in delivery order.
  SELECT * FROM leased ORDER BY leased.priority DESC, leased.run_at, leased.id;
END
$$;
