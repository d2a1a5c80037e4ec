-- 0024: per-group concurrency (queue setting group_max_in_flight): at most N messages of one
-- message group in flight at once, other groups unaffected. Unset (the default), a group is
-- what it always was: one message at a time, in send order (N = 1). Adds the column and
-- replaces holdline.receive (same signature, same result), holdline.waiting_reason and the
-- view holdline.queue_waiting (same columns).
-- Locks: ACCESS EXCLUSIVE on holdline.queues for the instant of adding a nullable column (no
-- rewrite); otherwise only the functions and the view it replaces.
--
-- Exact without a lock: a message of a group is deliverable only while fewer than N earlier
-- messages of its group are in the queue (leased or waiting), so only a group's first N
-- messages by send order can be leased, and a group never has more than N in flight however
-- receivers interleave. The window slides as earlier messages are acked or dead-lettered; a
-- message waiting out its backoff keeps its place in it, as a group's head does today.

ALTER TABLE holdline.queues
  ADD COLUMN group_max_in_flight integer CHECK (group_max_in_flight BETWEEN 1 AND 10000);

-- As in 0023, with a group's window of group_max_in_flight (messages_group_idx, as before;
-- the count stops at N). Unset, the group probe is 0023's NOT EXISTS, unchanged.
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
  v_clock timestamptz;
  v_tokens double precision;
  v_leased integer;
  v_group_max integer;
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
  IF (v_queue.max_in_flight IS NOT NULL OR v_queue.rate_limit_count IS NOT NULL)
     AND NOT v_queue.paused THEN
    PERFORM pg_advisory_xact_lock(1212957520, hashtext(p_queue));
    -- Read again under the lock: the settings may have changed while we waited.
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
      v_max := least(v_max, v_queue.max_in_flight - v_in_flight);
    END IF;
    IF v_queue.rate_limit_count IS NOT NULL THEN
      -- The wall clock, read under the lock: the previous holder charged the bucket as of its
      -- own clock reading, which is earlier than this one.
      v_clock := coalesce(p_now, clock_timestamp());
      SELECT r.tokens INTO v_tokens FROM holdline.rate_limit_tokens(p_queue, v_clock) r;
      v_max := least(v_max, floor(v_tokens)::integer);
    END IF;
  END IF;
  IF v_queue.paused OR v_max <= 0 THEN
    RETURN;
  END IF;
  v_group_max := v_queue.group_max_in_flight;
  v_lease_token := gen_random_uuid();
  RETURN QUERY
  WITH deliverable AS (
    SELECT m.id
    FROM holdline.messages m
    WHERE m.queue = p_queue
      AND m.lease_token IS NULL
      AND m.run_at <= v_now
      AND (m.group_key IS NULL
           OR (v_group_max IS NULL AND NOT EXISTS (
                 SELECT 1 FROM holdline.messages earlier
                 WHERE earlier.queue = m.queue AND earlier.group_key = m.group_key
                   AND earlier.id < m.id))
           OR (v_group_max IS NOT NULL AND (
                 SELECT count(*) FROM (
                   SELECT 1 FROM holdline.messages earlier
                   WHERE earlier.queue = m.queue AND earlier.group_key = m.group_key
                     AND earlier.id < m.id
                   LIMIT v_group_max) ahead) < v_group_max))
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
  IF v_tokens IS NOT NULL THEN
    GET DIAGNOSTICS v_leased = ROW_COUNT;
    IF v_leased > 0 THEN
      INSERT INTO holdline.rate_limit_buckets AS b (queue, tokens, refilled_at)
      VALUES (p_queue, v_tokens - v_leased, v_clock)
      ON CONFLICT (queue) DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at;
    END IF;
  END IF;
END
$$;

-- As in 0023, judging GROUP_HEAD_IN_FLIGHT by the group's window.
CREATE OR REPLACE FUNCTION holdline.waiting_reason(p_id bigint, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (reason text, next_eligible_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT w.reason,
         CASE w.reason WHEN 'BACKING_OFF' THEN w.run_at WHEN 'DELAYED' THEN w.run_at
                       WHEN 'RATE_LIMITED' THEN w.next_token_at
                       WHEN 'READY' THEN w.now END
  FROM (
    SELECT m.run_at, c.now, r.next_token_at,
           CASE
             WHEN m.lease_token IS NOT NULL THEN NULL
             WHEN m.run_at > c.now AND m.attempts > 0 THEN 'BACKING_OFF'
             WHEN m.run_at > c.now THEN 'DELAYED'
             WHEN q.paused THEN 'QUEUE_PAUSED'
             WHEN m.group_key IS NOT NULL AND (
                    SELECT count(*) FROM (SELECT FROM holdline.messages e
                                          WHERE e.queue = m.queue AND e.group_key = m.group_key
                                            AND e.id < m.id
                                          LIMIT coalesce(q.group_max_in_flight, 1)) ahead)
                    >= coalesce(q.group_max_in_flight, 1)
               THEN 'GROUP_HEAD_IN_FLIGHT'
             WHEN q.max_in_flight IS NOT NULL AND (
                    SELECT count(*) FROM (SELECT FROM holdline.messages l
                                          WHERE l.queue = m.queue AND l.lease_token IS NOT NULL
                                          LIMIT q.max_in_flight) held) >= q.max_in_flight
               THEN 'CONCURRENCY_CAP'
             WHEN r.tokens < 1 THEN 'RATE_LIMITED'
             ELSE 'READY'
           END AS reason
    FROM (SELECT coalesce(p_now, now()) AS now) c
    JOIN holdline.messages m ON m.id = p_id
    LEFT JOIN holdline.queues q ON q.name = m.queue
    LEFT JOIN LATERAL holdline.rate_limit_tokens(m.queue, c.now) r ON true
  ) w
$$;

-- As in 0023, judging GROUP_HEAD_IN_FLIGHT by the group's window.
CREATE OR REPLACE VIEW holdline.queue_waiting AS
WITH per_queue AS (
  SELECT q.name, q.paused, q.max_in_flight, q.group_max_in_flight,
         (SELECT count(*) FROM holdline.messages l
          WHERE l.queue = q.name AND l.lease_token IS NOT NULL) AS leased,
         coalesce((SELECT r.tokens < 1 FROM holdline.rate_limit_tokens(q.name, now()) r), false)
           AS rate_limited
  FROM holdline.queues q
), classified AS (
  SELECT m.queue,
         CASE
           WHEN m.run_at > now() AND m.attempts > 0 THEN 'BACKING_OFF'
           WHEN m.run_at > now() THEN 'DELAYED'
           WHEN p.paused THEN 'QUEUE_PAUSED'
           WHEN m.group_key IS NOT NULL AND (
                  SELECT count(*) FROM (SELECT FROM holdline.messages e
                                        WHERE e.queue = m.queue AND e.group_key = m.group_key
                                          AND e.id < m.id
                                        LIMIT coalesce(p.group_max_in_flight, 1)) ahead)
                  >= coalesce(p.group_max_in_flight, 1)
             THEN 'GROUP_HEAD_IN_FLIGHT'
           WHEN p.max_in_flight IS NOT NULL AND p.leased >= p.max_in_flight THEN 'CONCURRENCY_CAP'
           WHEN p.rate_limited THEN 'RATE_LIMITED'
           ELSE 'READY'
         END AS reason
  FROM per_queue p
  JOIN holdline.messages m ON m.queue = p.name AND m.lease_token IS NULL
)
SELECT p.name AS queue,
       count(c.reason) FILTER (WHERE c.reason = 'READY') AS ready,
       count(c.reason) FILTER (WHERE c.reason = 'DELAYED') AS delayed,
       count(c.reason) FILTER (WHERE c.reason = 'BACKING_OFF') AS backing_off,
       count(c.reason) FILTER (WHERE c.reason = 'GROUP_HEAD_IN_FLIGHT') AS group_head_in_flight,
       count(c.reason) FILTER (WHERE c.reason = 'QUEUE_PAUSED') AS queue_paused,
       count(c.reason) FILTER (WHERE c.reason = 'CONCURRENCY_CAP') AS concurrency_cap,
       count(c.reason) FILTER (WHERE c.reason = 'RATE_LIMITED') AS rate_limited,
       p.leased,
       p.max_in_flight
FROM per_queue p
LEFT JOIN classified c ON c.queue = p.name
GROUP BY p.name, p.leased, p.max_in_flight;
