-- 0033: a rate limit per message group (queue settings group_rate_limit_count per
-- group_rate_limit_per_seconds): each group key of the queue draws from a token bucket of its
-- own, kept in PostgreSQL, so every consumer, instance and transport obeys one limit per group
-- (BullMQ Pro's group rate limits, Oban Pro's partitioned rate limits). Messages without a
-- group key are not held by it; the queue's own rate limit (0023) still applies to all.
-- Adds the columns, holdline.group_rate_limit_buckets, holdline.group_rate_limit_tokens, and
-- replaces holdline.receive (same signature, same result), holdline.waiting_reason and the
-- view holdline.queue_waiting (same columns) so that RATE_LIMITED is judged by group too.
-- Locks: ACCESS EXCLUSIVE on holdline.queues for the instant of adding nullable columns (no
-- rewrite); otherwise only what it creates and replaces.
--
-- Exact under any interleaving: a group's bucket is read and charged only by a receive that
-- holds the group's lock (advisory, namespace 'HLGR', to the end of its transaction), taken
-- with try, so a receive skips a group another receiver is charging instead of waiting for it.

ALTER TABLE holdline.queues
  ADD COLUMN group_rate_limit_count integer CHECK (group_rate_limit_count BETWEEN 1 AND 1000000),
  ADD COLUMN group_rate_limit_per_seconds double precision
    CHECK (group_rate_limit_per_seconds >= 0.001 AND group_rate_limit_per_seconds <= 86400),
  ADD CONSTRAINT queues_group_rate_limit_check
    CHECK ((group_rate_limit_count IS NULL) = (group_rate_limit_per_seconds IS NULL));

-- Each group's bucket, as 0023's per queue: `tokens` as of `refilled_at`, at most
-- group_rate_limit_count, gaining group_rate_limit_count every group_rate_limit_per_seconds.
-- A group without a row has a full bucket, so the housekeeper deletes rows that are full again
-- (and rows of queues that lost the limit): the table holds only the groups recently busy.
CREATE TABLE holdline.group_rate_limit_buckets (
  queue text NOT NULL REFERENCES holdline.queues (name) ON DELETE CASCADE,
  group_key text NOT NULL,
  tokens double precision NOT NULL,
  refilled_at timestamptz NOT NULL,
  PRIMARY KEY (queue, group_key)
);

-- The tokens of p_group_key's bucket in p_queue at p_now, and when its next whole token is due
-- (p_now when one is there already). No row without a group rate limit or without a group key.
-- Read without the group's lock, it is an estimate.
CREATE FUNCTION holdline.group_rate_limit_tokens(p_queue text, p_group_key text, p_now timestamptz)
RETURNS TABLE (tokens double precision, next_token_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT f.tokens,
         CASE WHEN f.tokens >= 1 THEN p_now
              ELSE p_now + make_interval(secs => (1 - f.tokens) / f.rate) END
  FROM (
    SELECT q.group_rate_limit_count / q.group_rate_limit_per_seconds AS rate,
           least(q.group_rate_limit_count::double precision,
                 coalesce(b.tokens + greatest(0, extract(epoch FROM p_now - b.refilled_at))
                                     * q.group_rate_limit_count / q.group_rate_limit_per_seconds,
                          q.group_rate_limit_count)) AS tokens
    FROM holdline.queues q
    LEFT JOIN holdline.group_rate_limit_buckets b
      ON b.queue = q.name AND b.group_key = p_group_key
    WHERE q.name = p_queue AND q.group_rate_limit_count IS NOT NULL AND p_group_key IS NOT NULL
  ) f
$$;

-- As in 0031, and with a per-group rate limit set, deliverable messages taken in chunks in
-- delivery order, each only while its group's bucket has a whole token left. Without one, 0031's statement
-- unchanged: a queue that does not use it pays one NULL test.
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
  v_group_clock timestamptz;
  v_ids bigint[] := '{}';
  v_groups text[] := '{}';
  v_group_tokens double precision[] := '{}';
  v_group_room integer[] := '{}';
  v_chunk_ids bigint[];
  v_chunk_groups text[];
  v_chunk_rows integer;
  v_met_groups text[];
  v_met_locked boolean[];
  v_taken_ids bigint[];
  v_taken_groups text[];
  v_last_priority integer;
  v_last_run_at timestamptz;
  v_last_id bigint;
  v_after_priority integer;
  v_after_run_at timestamptz;
  v_after_id bigint;
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
  IF v_queue.group_rate_limit_count IS NOT NULL THEN
    -- Per-group rate limit. The deliverable messages are taken in chunks of p_max, in
    -- delivery order, each chunk locked as one statement would lock it (FOR UPDATE SKIP
    -- LOCKED: concurrent receivers take different messages). The groups a chunk meets for the
    -- first time are locked (advisory, with try: a group another receiver is charging right
    -- now is passed over, never waited for, so receivers cannot deadlock on groups) and
    -- their buckets read; then each group gives as many of its messages, in order, as it has
    -- whole tokens. Ungrouped messages pass. A further chunk is taken only while the receive
    -- is short and the chunk was full. Messages passed over stay locked to this receive's
    -- commit, milliseconds later; other receivers pass them over meanwhile.
    v_group_clock := coalesce(p_now, clock_timestamp());
    LOOP
      SELECT coalesce(array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id), '{}'),
             coalesce(array_agg(c.group_key ORDER BY c.priority DESC, c.run_at, c.id), '{}'),
             count(*)::integer,
             (array_agg(c.priority ORDER BY c.priority ASC, c.run_at DESC, c.id DESC))[1],
             (array_agg(c.run_at ORDER BY c.priority ASC, c.run_at DESC, c.id DESC))[1],
             (array_agg(c.id ORDER BY c.priority ASC, c.run_at DESC, c.id DESC))[1]
      INTO v_chunk_ids, v_chunk_groups, v_chunk_rows, v_last_priority, v_last_run_at, v_last_id
      FROM (
        SELECT m.id, m.group_key, m.priority, m.run_at
        FROM holdline.messages m
        WHERE m.queue = p_queue
          AND m.lease_token IS NULL
          AND m.run_at <= v_now
          -- After the previous chunk's last message, in delivery order.
          AND (v_after_id IS NULL
               OR m.priority < v_after_priority
               OR (m.priority = v_after_priority
                   AND (m.run_at, m.id) > (v_after_run_at, v_after_id)))
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
        LIMIT p_max
        FOR UPDATE SKIP LOCKED
      ) c;
      EXIT WHEN v_chunk_rows = 0;
      v_after_priority := v_last_priority;
      v_after_run_at := v_last_run_at;
      v_after_id := v_last_id;
      -- The groups met for the first time, tried; then the buckets of those locked, read by
      -- a statement of their own, whose snapshot is taken after the locks: one taken together
      -- with the locks would not see a charge committed between its start and a lock.
      SELECT coalesce(array_agg(g.group_key), '{}'), coalesce(array_agg(g.locked), '{}')
      INTO v_met_groups, v_met_locked
      FROM (
        SELECT k.group_key,
               pg_try_advisory_xact_lock(1212958546, hashtext(p_queue || '/' || k.group_key))
                 AS locked
        FROM (SELECT DISTINCT k AS group_key FROM unnest(v_chunk_groups) k
              WHERE k IS NOT NULL AND NOT (k = ANY (v_groups))) k
      ) g;
      -- A group not locked has no room in this receive; no row is a full bucket.
      SELECT v_groups || coalesce(array_agg(n.group_key ORDER BY n.i), '{}'),
             v_group_tokens || coalesce(array_agg(n.tokens ORDER BY n.i), '{}'),
             v_group_room || coalesce(array_agg(coalesce(floor(n.tokens)::integer, 0)
                                                ORDER BY n.i), '{}')
      INTO v_groups, v_group_tokens, v_group_room
      FROM (
        SELECT g.group_key, g.i,
               CASE WHEN g.locked THEN least(
                 v_queue.group_rate_limit_count::double precision,
                 coalesce(b.tokens + greatest(0, extract(epoch FROM v_group_clock - b.refilled_at))
                                     * v_queue.group_rate_limit_count
                                     / v_queue.group_rate_limit_per_seconds,
                          v_queue.group_rate_limit_count)) END AS tokens
        FROM unnest(v_met_groups, v_met_locked) WITH ORDINALITY g(group_key, locked, i)
        LEFT JOIN holdline.group_rate_limit_buckets b
          ON g.locked AND b.queue = p_queue AND b.group_key = g.group_key
      ) n;
      -- Each group's next messages while it has room, in delivery order, up to what is left
      -- of the receive.
      SELECT coalesce(array_agg(t.id ORDER BY t.ord), '{}'),
             coalesce(array_agg(t.group_key ORDER BY t.ord), '{}')
      INTO v_taken_ids, v_taken_groups
      FROM (
        SELECT c.id, c.group_key, c.ord
        FROM (SELECT c.id, c.group_key, c.ord,
                     row_number() OVER (PARTITION BY c.group_key ORDER BY c.ord) AS nth
              FROM unnest(v_chunk_ids, v_chunk_groups) WITH ORDINALITY c(id, group_key, ord)) c
        LEFT JOIN unnest(v_groups, v_group_room) r(group_key, room) ON r.group_key = c.group_key
        WHERE c.group_key IS NULL OR c.nth <= r.room
        ORDER BY c.ord
        LIMIT v_max - cardinality(v_ids)
      ) t;
      v_ids := v_ids || v_taken_ids;
      EXIT WHEN cardinality(v_ids) >= v_max OR v_chunk_rows < p_max;
      -- Room left for the next chunk.
      SELECT array_agg(r.room - coalesce(u.used, 0)::integer ORDER BY r.i)
      INTO v_group_room
      FROM unnest(v_groups, v_group_room) WITH ORDINALITY r(group_key, room, i)
      LEFT JOIN (SELECT k AS group_key, count(*) AS used FROM unnest(v_taken_groups) k
                 WHERE k IS NOT NULL GROUP BY k) u ON u.group_key = r.group_key;
    END LOOP;
    IF cardinality(v_ids) = 0 THEN
      RETURN;
    END IF;
    -- The messages taken are locked by this receive since their chunk, so nobody leased
    -- them meanwhile; a group's window only widens while they are locked (it counts the
    -- earlier messages of the group, which acks delete and nothing adds). Each group's bucket
    -- is charged what it gave, from the tokens read under its lock.
    RETURN QUERY
    WITH leased AS (
      UPDATE holdline.messages m
      SET lease_token = v_lease_token,
          lease_expires_at = v_now + make_interval(
            secs => coalesce(p_visibility_timeout_seconds, v_queue.visibility_timeout_seconds)),
          attempts = m.attempts + 1
      WHERE m.id = ANY (v_ids)
      RETURNING m.*
    )
    , charged AS (
      INSERT INTO holdline.group_rate_limit_buckets AS b (queue, group_key, tokens, refilled_at)
      SELECT p_queue, l.group_key, min(t.tokens) - count(*), v_group_clock
      FROM leased l
      JOIN unnest(v_groups, v_group_tokens) t(group_key, tokens) ON t.group_key = l.group_key
      WHERE t.tokens IS NOT NULL
      GROUP BY l.group_key
      ON CONFLICT (queue, group_key)
        DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at
    )
    SELECT * FROM leased ORDER BY leased.priority DESC, leased.run_at, leased.id;
  ELSE
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
  END IF;
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

-- As in 0024, and RATE_LIMITED also when the message's group has no whole token left; its next
-- eligible time is when both buckets that hold it back have a token.
CREATE OR REPLACE FUNCTION holdline.waiting_reason(p_id bigint, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (reason text, next_eligible_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT w.reason,
         CASE w.reason WHEN 'BACKING_OFF' THEN w.run_at WHEN 'DELAYED' THEN w.run_at
                       WHEN 'RATE_LIMITED' THEN greatest(
                         CASE WHEN w.queue_tokens < 1 THEN w.next_token_at END,
                         CASE WHEN w.group_tokens < 1 THEN w.group_next_token_at END)
                       WHEN 'READY' THEN w.now END
  FROM (
    SELECT m.run_at, c.now, r.next_token_at, r.tokens AS queue_tokens,
           g.tokens AS group_tokens, g.next_token_at AS group_next_token_at,
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
             WHEN r.tokens < 1 OR g.tokens < 1 THEN 'RATE_LIMITED'
             ELSE 'READY'
           END AS reason
    FROM (SELECT coalesce(p_now, now()) AS now) c
    JOIN holdline.messages m ON m.id = p_id
    LEFT JOIN holdline.queues q ON q.name = m.queue
    LEFT JOIN LATERAL holdline.rate_limit_tokens(m.queue, c.now) r ON true
    LEFT JOIN LATERAL holdline.group_rate_limit_tokens(m.queue, m.group_key, c.now) g ON true
  ) w
$$;

-- As in 0024, counting a message whose group has no whole token left as RATE_LIMITED.
CREATE OR REPLACE VIEW holdline.queue_waiting AS
WITH per_queue AS (
  SELECT q.name, q.paused, q.max_in_flight, q.group_max_in_flight,
         q.group_rate_limit_count IS NOT NULL AS group_rate_limited,
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
           WHEN p.group_rate_limited AND m.group_key IS NOT NULL AND (
                  SELECT g.tokens < 1
                  FROM holdline.group_rate_limit_tokens(m.queue, m.group_key, now()) g)
             THEN 'RATE_LIMITED'
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
