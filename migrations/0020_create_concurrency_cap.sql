-- 0020: a global concurrency cap per queue (queue setting max_in_flight): across every
-- consumer, service instance and transport, never more than max_in_flight leased messages of
-- the queue at once. Adds the column, replaces the leases' expiry index by one keyed by queue
-- first (the cap counts a queue's leases; the reaper now walks it queue by queue), and
-- replaces holdline.receive (same signature, same result) and holdline.reap_expired_leases
-- (same signature, same result).
-- Locks: ACCESS EXCLUSIVE on holdline.queues for the instant of adding a nullable column (no
-- rewrite); SHARE on holdline.messages while the new index is built (writes to messages wait
-- for that build, which reads only the leased rows' entries of a table of live messages),
-- then ACCESS EXCLUSIVE for the instant of dropping the old index.

-- NULL: no cap (the default). Lowering the cap below the leases already held takes nothing
-- back: receives deliver nothing until acks, nacks or expiries bring the count under it.
ALTER TABLE holdline.queues
  ADD COLUMN max_in_flight integer CHECK (max_in_flight BETWEEN 1 AND 100000);

-- Why replace the index rather than add one beside it: a lease writes an entry into every
-- index whose predicate its new row version meets, so a second index of leased rows would
-- cost every receive, capped or not, one more B-tree insertion per message. Keyed by queue
-- first, the one index serves both the cap's count ("this queue's leases", a range of it)
-- and the reaper ("expired leases", one range per queue).
CREATE INDEX messages_leased_idx ON holdline.messages (queue, lease_expires_at)
  WHERE lease_token IS NOT NULL;
DROP INDEX holdline.messages_lease_expiry_idx;

-- Leases up to p_max deliverable messages of one queue in delivery order, as in 0006, and, on
-- a queue with max_in_flight set, no more than the cap leaves free.
--
-- The cap is exact under any interleaving: a capped receive takes the queue's cap lock
-- (advisory, namespace 'HLCP', held to the end of its transaction), then counts the queue's
-- leases and leases at most the difference. The lock is released only after the commit is
-- visible, so the next capped receiver's count, a later statement than its lock, sees every
-- lease the previous one took. Acks, nacks and the reaper only lower the count and take no
-- lock: a receiver that counted just before one of them leases less than it could, never more.
--
-- An uncapped queue pays nothing: one NULL test on the row already read. A receive that read
-- the queue before a cap was set may still lease as if uncapped (the cap applies from the
-- next receive on); leases taken before the cap was set count against it.
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
  v_max integer := p_max;
  v_in_flight integer;
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
  IF v_queue.max_in_flight IS NOT NULL AND NOT v_queue.paused THEN
    PERFORM pg_advisory_xact_lock(1212957520, hashtext(p_queue));
    -- Read again under the lock: the cap may have changed while we waited.
    SELECT * INTO v_queue FROM holdline.queues WHERE name = p_queue;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'queue "%" does not exist', p_queue USING ERRCODE = 'HL404';
    END IF;
    IF v_queue.max_in_flight IS NOT NULL THEN
      -- A range of messages_leased_idx; counting stops at the cap.
      SELECT count(*) INTO v_in_flight
      FROM (SELECT FROM holdline.messages m
            WHERE m.queue = p_queue AND m.lease_token IS NOT NULL
            LIMIT v_queue.max_in_flight) held;
      v_max := least(p_max, v_queue.max_in_flight - v_in_flight);
    END IF;
  END IF;
  IF v_queue.paused OR v_max <= 0 THEN
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
    LIMIT v_max
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

-- The reaper's pass over expired leases, as in 0002: up to p_limit of them, oldest expiry
-- first, treated as a failed delivery. The expired leases are found queue by queue (a range
-- of messages_leased_idx each, so a pass costs one probe per queue plus what it reaps), then
-- locked, skipping rows another transaction holds (an ack in flight) and rows whose lease
-- changed in between.
CREATE OR REPLACE FUNCTION holdline.reap_expired_leases(p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (queue text, dead_letter_queue text, messages integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_ids bigint[];
BEGIN
  SELECT array_agg(expired.id) INTO v_ids FROM (
    SELECT m.id FROM holdline.messages m
    WHERE m.id = ANY (ARRAY(
            SELECT e.id
            FROM holdline.queues q
            CROSS JOIN LATERAL (
              SELECT l.id, l.lease_expires_at FROM holdline.messages l
              WHERE l.queue = q.name AND l.lease_token IS NOT NULL AND l.lease_expires_at <= v_now
              ORDER BY l.lease_expires_at
              LIMIT p_limit) e
            ORDER BY e.lease_expires_at
            LIMIT p_limit))
      AND m.lease_token IS NOT NULL AND m.lease_expires_at <= v_now
    FOR UPDATE SKIP LOCKED
  ) expired;
  IF v_ids IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  WITH outcome AS (
    SELECT r.queue, r.dead_letter_queue, count(*)::integer AS messages
    FROM holdline.retry_or_dead_letter(v_ids, NULL, 'lease expired', v_now) r
    GROUP BY r.queue, r.dead_letter_queue
  )
  SELECT o.queue, o.dead_letter_queue, o.messages FROM outcome o;
  PERFORM holdline.wake(q) FROM (SELECT DISTINCT m.queue AS q FROM holdline.messages m WHERE m.id = ANY (v_ids)) s;
END
$$;
