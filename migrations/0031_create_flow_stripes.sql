-- 0031: flow limits that do not bind stop serialising receives. A capped or rate-limited
-- queue's concurrency cap and token bucket are split into stripes, each guarded by a lock of
-- its own (the cap lock of 0020, one per stripe), so concurrent receivers take different
-- stripes instead of queueing for the queue's one lock. Adds holdline.flow_stripes,
-- holdline.rate_limit_stripe_tokens and a stripe column to holdline.rate_limit_buckets
-- (existing rows become stripe 0), and replaces holdline.receive and
-- holdline.rate_limit_tokens (same signatures, same results).
-- Locks: ACCESS EXCLUSIVE on holdline.rate_limit_buckets while its primary key is rebuilt
-- (one row per rate-limited queue); otherwise only the functions it creates and replaces.
--
-- Why: with one lock per queue, four consumers leasing 1,000 at a time ran one after another
-- however far the limit was from binding (W10, docs/performance.md "Flow control").
--
-- Exact under any interleaving, stripe by stripe:
-- * The cap: stripe k of S holds max_in_flight / S slots (the remainder spread over the first
--   stripes, so the stripes' slots add up to max_in_flight). A lease records its stripe in
--   its lease token (the last byte, k; the token stays a random UUID otherwise), and a
--   receive holding stripe k's lock counts the leases whose token's last byte is k modulo S,
--   then leases at most the difference, under that stripe's token. Every lease falls in
--   exactly one stripe for any S, so the leases add up to at most max_in_flight. Acks, nacks
--   and the reaper only lower a stripe's count, as in 0020.
-- * The rate limit: stripe k's bucket holds at most rate_limit_count / S tokens and gains
--   rate_limit_count / S every rate_limit_per_seconds, so the stripes together hold at most
--   rate_limit_count (the burst) and refill at exactly the queue's rate.
--
-- S = 1 is 0024's design exactly (the lock of stripe 0 is the queue's cap lock, the bucket
-- of stripe 0 is the queue's bucket). S grows only where every stripe still holds a whole
-- receive (1,000, the most a receive asks for): a limit below 2,000 keeps one stripe, and
-- binds as exactly as before, to the token. At most 8 stripes.

ALTER TABLE holdline.rate_limit_buckets
  ADD COLUMN stripe smallint NOT NULL DEFAULT 0 CHECK (stripe BETWEEN 0 AND 7),
  DROP CONSTRAINT rate_limit_buckets_pkey,
  ADD PRIMARY KEY (queue, stripe);

-- How many stripes a queue with these limits has: 1 up to a limit of 1,999, then one per
-- 1,000 of the tighter limit, at most 8. A stripe never holds less than a whole receive.
CREATE FUNCTION holdline.flow_stripes(p_max_in_flight integer, p_rate_limit_count integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT greatest(1, least(8, coalesce(p_max_in_flight / 1000, 8),
                           coalesce(p_rate_limit_count / 1000, 8)))
$$;

-- The tokens of stripe p_stripe of p_queue's bucket at p_now, with p_stripes stripes: at most
-- rate_limit_count / p_stripes, refilled at that many per rate_limit_per_seconds since its
-- last charge; full when never charged. No row without a rate limit. Needs the stripe's lock
-- to be charged from; read without it, it is an estimate.
CREATE FUNCTION holdline.rate_limit_stripe_tokens(
  p_queue text, p_stripe integer, p_stripes integer, p_now timestamptz
) RETURNS double precision
LANGUAGE sql STABLE AS $$
  -- With one stripe, the arithmetic of 0023 term for term, so a bucket holds what it held.
  SELECT least(q.rate_limit_count::double precision / p_stripes,
               coalesce(b.tokens + greatest(0, extract(epoch FROM p_now - b.refilled_at))
                                   * q.rate_limit_count / q.rate_limit_per_seconds / p_stripes,
                        q.rate_limit_count::double precision / p_stripes))
  FROM holdline.queues q
  LEFT JOIN holdline.rate_limit_buckets b ON b.queue = q.name AND b.stripe = p_stripe
  WHERE q.name = p_queue AND q.rate_limit_count IS NOT NULL
$$;

-- As in 0023, over the stripes: the most tokens one receive can take at p_now (the fullest
-- stripe's), and when the next whole token is due in some stripe (p_now when one is there
-- already). With one stripe, the bucket's tokens, as before.
CREATE OR REPLACE FUNCTION holdline.rate_limit_tokens(p_queue text, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (tokens double precision, next_token_at timestamptz)
LANGUAGE sql VOLATILE AS $$
  SELECT max(f.tokens),
         CASE WHEN max(f.tokens) >= 1 THEN min(f.now)
              ELSE min(f.now) + make_interval(secs => (1 - max(f.tokens)) / min(f.rate)) END
  FROM (
    SELECT c.now, q.rate_limit_count / q.rate_limit_per_seconds / s.n AS rate,
           holdline.rate_limit_stripe_tokens(q.name, k, s.n, c.now) AS tokens
    FROM (SELECT coalesce(p_now, clock_timestamp()) AS now) c
    JOIN holdline.queues q ON q.name = p_queue AND q.rate_limit_count IS NOT NULL
    CROSS JOIN LATERAL holdline.flow_stripes(q.max_in_flight, q.rate_limit_count) s(n)
    CROSS JOIN LATERAL generate_series(0, s.n - 1) k
  ) f
  HAVING count(*) > 0
$$;

-- As in 0024, taking one stripe of a capped or rate-limited queue instead of the whole queue.
-- A receiver starts at the stripe its backend's pid names (consumers on different
-- connections spread over the stripes), takes the first stripe it can lock at once that has
-- room and a whole token, and leases no more than that stripe allows. When every stripe is
-- locked by other receivers it waits for its first one, as every capped receive once waited
-- for the queue; it never waits while holding a stripe, so receivers cannot deadlock on
-- them. Stripes it locked and found full stay locked to its commit, like any lock here.
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
  v_stripes integer;
  v_first integer;
  v_try integer := 0;
  v_stripe integer;
  v_held boolean := false;
  v_slots integer;
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
    v_stripes := holdline.flow_stripes(v_queue.max_in_flight, v_queue.rate_limit_count);
    v_first := pg_backend_pid() % v_stripes;
    LOOP
      IF v_try < v_stripes THEN
        v_stripe := (v_first + v_try) % v_stripes;
        v_try := v_try + 1;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(1212957520, hashtext(p_queue) # v_stripe);
      ELSIF v_held THEN
        -- Every stripe was full, empty of tokens or taken by another receiver.
        RETURN;
      ELSE
        -- Every stripe was taken: wait for the first one.
        v_stripe := v_first;
        PERFORM pg_advisory_xact_lock(1212957520, hashtext(p_queue) # v_stripe);
        -- Read again under the lock: the settings may have changed while we waited.
        SELECT * INTO v_queue FROM holdline.queues WHERE name = p_queue;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'queue "%" does not exist', p_queue USING ERRCODE = 'HL404';
        END IF;
        IF v_queue.paused THEN
          RETURN;
        END IF;
        v_stripes := holdline.flow_stripes(v_queue.max_in_flight, v_queue.rate_limit_count);
        IF v_stripe >= v_stripes THEN
          -- The stripes were merged while we waited; the stripe we hold is gone.
          RETURN;
        END IF;
      END IF;
      v_held := true;
      v_max := p_max;
      v_tokens := NULL;
      IF v_queue.max_in_flight IS NOT NULL THEN
        v_slots := v_queue.max_in_flight / v_stripes
                   + (v_stripe < v_queue.max_in_flight % v_stripes)::integer;
        -- A range of messages_leased_idx; counting stops at the stripe's slots. With one
        -- stripe every lease of the queue counts, as before.
        SELECT count(*) INTO v_in_flight
        FROM (SELECT FROM holdline.messages m
              WHERE m.queue = p_queue AND m.lease_token IS NOT NULL
                AND (v_stripes = 1
                     OR get_byte(uuid_send(m.lease_token), 15) % v_stripes = v_stripe)
              LIMIT v_slots) held;
        v_max := least(v_max, v_slots - v_in_flight);
      END IF;
      IF v_queue.rate_limit_count IS NOT NULL AND v_max > 0 THEN
        -- The wall clock, read under the lock: the previous holder charged the stripe as of its
        -- own clock reading, which is earlier than this one.
        v_clock := coalesce(p_now, clock_timestamp());
        v_tokens := holdline.rate_limit_stripe_tokens(p_queue, v_stripe, v_stripes, v_clock);
        v_max := least(v_max, floor(v_tokens)::integer);
      END IF;
      EXIT WHEN v_max > 0 OR v_try >= v_stripes;
    END LOOP;
  END IF;
  IF v_queue.paused OR v_max <= 0 THEN
    RETURN;
  END IF;
  v_group_max := v_queue.group_max_in_flight;
  v_lease_token := gen_random_uuid();
  IF v_stripe IS NOT NULL THEN
    -- The lease's stripe, for the cap's count (see above).
    v_lease_token := encode(set_byte(uuid_send(v_lease_token), 15, v_stripe), 'hex')::uuid;
  END IF;
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
      INSERT INTO holdline.rate_limit_buckets AS b (queue, stripe, tokens, refilled_at)
      VALUES (p_queue, v_stripe, v_tokens - v_leased, v_clock)
      ON CONFLICT (queue, stripe)
        DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at;
    END IF;
  END IF;
END
$$;
