-- 0041: per-group rate limits (0033) over the partitioned storage (0040). Both landed in the
-- same release: 0040 made holdline.receive and the view holdline.queue_waiting again over the
-- partitioned table from their versions before 0033, so this puts 0033's per-group rate limit
-- back into both (same signatures, same columns), reading the queue's partition alone.
-- Locks: only the function and the view it replaces.

-- As in 0040, with 0033's per-group rate limit.
CREATE OR REPLACE FUNCTION holdline.receive(p_queue text, p_max integer, p_visibility_timeout_seconds integer DEFAULT NULL::integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS SETOF holdline.messages
    LANGUAGE plpgsql
    AS $$
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
  v_partition integer;
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
        -- A range of the partition's messages_leased_idx; counting stops at the stripe's
        -- slots. With one stripe every lease of the queue counts, as before.
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
  SELECT p.id INTO v_partition FROM holdline.message_partitions p WHERE p.queue = p_queue;
  -- The partition's number in the token's first four bytes: acks find the partition from the
  -- receipt. 90 random bits stay (82 with a stripe), enough to fence one lease from another.
  v_lease_token := encode(overlay(uuid_send(gen_random_uuid()) PLACING int4send(v_partition)
                                  FROM 1 FOR 4), 'hex')::uuid;
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
                     WHERE earlier.queue = p_queue AND earlier.group_key = m.group_key
                       AND earlier.id < m.id))
               OR (v_group_max IS NOT NULL AND (
                     SELECT count(*) FROM (
                       SELECT 1 FROM holdline.messages earlier
                       WHERE earlier.queue = p_queue AND earlier.group_key = m.group_key
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
      WHERE m.queue = p_queue AND m.id = ANY (v_ids)
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
      -- The queue's partition, through its messages_receive_idx (priority DESC, run_at, id).
      SELECT m.id
      FROM holdline.messages m
      WHERE m.queue = p_queue
        AND m.lease_token IS NULL
        AND m.run_at <= v_now
        AND (m.group_key IS NULL
             OR (v_group_max IS NULL AND NOT EXISTS (
                   SELECT 1 FROM holdline.messages earlier
                   WHERE earlier.queue = p_queue AND earlier.group_key = m.group_key
                     AND earlier.id < m.id))
             OR (v_group_max IS NOT NULL AND (
                   SELECT count(*) FROM (
                     SELECT 1 FROM holdline.messages earlier
                     WHERE earlier.queue = p_queue AND earlier.group_key = m.group_key
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
      -- The chosen ids as an array, read through the partition's primary key: as a join, the
      -- planner hashed the whole partition for each receive once a queue held some 10,000
      -- messages (measured: 9.6 of a 22 ms receive of 1,000 with 40,000 queued).
      WHERE m.queue = p_queue AND m.id = ANY (ARRAY(SELECT d.id FROM deliverable d))
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

-- As in 0040 (which made the view again over the partitioned table), and as in 0033: a
-- message whose group has no whole token left counts as RATE_LIMITED.
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
