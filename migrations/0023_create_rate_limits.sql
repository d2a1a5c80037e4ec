-- 0023: a rate limit per queue (queue settings rate_limit_count per rate_limit_per_seconds): a
-- token bucket kept in PostgreSQL, so every consumer, instance and transport draws from one.
-- Adds the columns, holdline.rate_limit_buckets, holdline.rate_limit_next_token, and
-- replaces holdline.receive (same signature, same result), holdline.waiting_reason and the
-- view holdline.queue_waiting (same columns) so that RATE_LIMITED is judged.
-- Locks: ACCESS EXCLUSIVE on holdline.queues for the instant of adding nullable columns (no
-- rewrite); otherwise only what it creates and replaces.

-- Both set, or neither (no limit). The bucket holds at most rate_limit_count tokens and gains
-- rate_limit_count every rate_limit_per_seconds; each delivery takes one.
ALTER TABLE holdline.queues
  ADD COLUMN rate_limit_count integer CHECK (rate_limit_count BETWEEN 1 AND 1000000),
  ADD COLUMN rate_limit_per_seconds double precision
    CHECK (rate_limit_per_seconds >= 0.001 AND rate_limit_per_seconds <= 86400),
  ADD CONSTRAINT queues_rate_limit_check
    CHECK ((rate_limit_count IS NULL) = (rate_limit_per_seconds IS NULL));

-- The token bucket of each rate-limited queue: `tokens` as of `refilled_at`. Written only by
-- capped or rate-limited receives, under the queue's cap lock. A queue without a row has a
-- full bucket. Rows of queues that lost their limit are left alone and ignored.
CREATE TABLE holdline.rate_limit_buckets (
  queue text PRIMARY KEY REFERENCES holdline.queues (name) ON DELETE CASCADE,
  tokens double precision NOT NULL,
  refilled_at timestamptz NOT NULL
);

-- The tokens of p_queue's bucket at p_now (NULL: the wall clock, clock_timestamp()), and
-- when the next whole token is due (p_now when one is there already). No row: the queue has
-- no rate limit.
CREATE FUNCTION holdline.rate_limit_tokens(p_queue text, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (tokens double precision, next_token_at timestamptz)
LANGUAGE sql VOLATILE AS $$
  SELECT f.tokens,
         CASE WHEN f.tokens >= 1 THEN f.now
              ELSE f.now + make_interval(secs => (1 - f.tokens) / f.rate) END
  FROM (
    SELECT c.now, q.rate_limit_count / q.rate_limit_per_seconds AS rate,
           least(q.rate_limit_count::double precision,
                 coalesce(b.tokens + greatest(0, extract(epoch FROM c.now - b.refilled_at))
                                     * q.rate_limit_count / q.rate_limit_per_seconds,
                          q.rate_limit_count)) AS tokens
    FROM (SELECT coalesce(p_now, clock_timestamp()) AS now) c
    JOIN holdline.queues q ON q.name = p_queue AND q.rate_limit_count IS NOT NULL
    LEFT JOIN holdline.rate_limit_buckets b ON b.queue = q.name
  ) f
$$;

-- Leases up to p_max deliverable messages of one queue in delivery order, as in 0020, no more
-- than its concurrency cap leaves free, and no more than its rate limit's bucket holds whole
-- tokens. Both are judged under the queue's cap lock (see 0020), so they are exact under any
-- interleaving of receivers; the bucket is charged one token per message leased. An
-- unlimited, uncapped queue still pays only two NULL tests on the row already read.
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

-- As in 0021, and RATE_LIMITED (next eligible when the bucket's next whole token is due)
-- when the queue's rate limit has no whole token left.
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
             WHEN m.group_key IS NOT NULL AND EXISTS (
                    SELECT 1 FROM holdline.messages e
                    WHERE e.queue = m.queue AND e.group_key = m.group_key AND e.id < m.id)
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

-- As in 0021, with RATE_LIMITED counted.
CREATE OR REPLACE VIEW holdline.queue_waiting AS
WITH per_queue AS (
  SELECT q.name, q.paused, q.max_in_flight,
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
           WHEN m.group_key IS NOT NULL AND EXISTS (
                  SELECT 1 FROM holdline.messages e
                  WHERE e.queue = m.queue AND e.group_key = m.group_key AND e.id < m.id)
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
