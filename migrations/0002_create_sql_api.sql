-- 0002: the SQL API: send, send_batch, publish, receive, nack, redrive, the reaper's passes,
-- and the views queue_stats and dead_letters. Errors use SQLSTATE class HL:
--   HL400 bad input, HL404 queue not found, HL413 payload too large.
-- Locks: none beyond creating functions and views.

-- Wakes consumers idle-waiting on a queue. pg_notify is queued and delivered at commit, never
-- on rollback. It is skipped unless someone waits: a NOTIFY makes every committing producer
-- take the global notify-queue lock, which halves single-send throughput (DESIGN.md).
--
-- The check runs before this transaction commits, so a consumer that registers in between
-- would miss the NOTIFY and find the message not yet committed. To close that gap the check
-- is made holding the queue lock shared until commit, and a registering consumer, after its
-- row is committed, takes the lock exclusively once (briefly): that waits for every sender
-- that checked before the row was visible to commit, so the consumer's next look sees their
-- messages, and every later sender sees the row.
CREATE FUNCTION holdline.wake(p_queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(1212961868, hashtext(p_queue));
  -- A statement after the lock: its snapshot sees a registration committed while we waited.
  IF EXISTS (SELECT 1 FROM holdline.waiting_consumers WHERE queue = p_queue) THEN
    PERFORM pg_notify('holdline_ready', p_queue);
  END IF;
END
$$;

-- Delay before retry number `attempts`: exponential from initial, capped at max, with "equal
-- jitter" (half fixed, half random) so retries spread out but still grow.
CREATE FUNCTION holdline.backoff_seconds(
  attempts integer, initial_seconds double precision, max_seconds double precision
) RETURNS double precision
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT d / 2 + random() * d / 2
  FROM (SELECT least(max_seconds, initial_seconds * power(2, least(greatest(attempts - 1, 0), 60))) AS d) s
$$;

-- Enqueues a batch into one queue, atomically, inside the caller's transaction. Element i of
-- each array describes message i; NULL arrays or elements take the defaults (run now,
-- priority 0, no dedup key, no group, no headers). Returns one row per input, in input
-- order: the new message, or the live message that already holds its dedup key.
--
-- The hot path of every send (bench/single-sends.ts). A single send is CPU-bound, so:
-- * plan_cache_mode = force_generic_plan: with array parameters the planner never finds the
--   generic plan cheaper than a custom one, and left alone it re-plans every statement of
--   this function on every call, which cost about a third of a single send;
-- * the queue lookup and every input check are one statement, not six.
CREATE FUNCTION holdline.send_batch(
  p_queue text,
  p_payloads jsonb[],
  p_run_ats timestamptz[] DEFAULT NULL,
  p_priorities integer[] DEFAULT NULL,
  p_dedup_keys text[] DEFAULT NULL,
  p_group_keys text[] DEFAULT NULL,
  p_headers jsonb[] DEFAULT NULL
) RETURNS SETOF holdline.messages
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_n integer := coalesce(cardinality(p_payloads), 0);
  v_max_bytes integer;
  v_null_payload bigint;
  v_large_payload bigint;
  v_bad_key boolean;
  v_far_run_at boolean;
  v_bad_headers boolean;
  v_ids bigint[];
  v_found integer;
BEGIN
  -- Shared with every other sender; deleteQueue takes it exclusively, so no message can be
  -- committed into a queue that is being deleted (and resurface if the name is reused).
  -- Taken before the queue is looked up: in READ COMMITTED the lookup, a later statement,
  -- then sees a delete that committed while this lock waited.
  PERFORM pg_advisory_xact_lock_shared(1212961868, hashtext(p_queue));

  SELECT q.max_payload_bytes,
         (SELECT min(i.ord) FROM unnest(p_payloads) WITH ORDINALITY AS i(payload, ord)
          WHERE i.payload IS NULL OR jsonb_typeof(i.payload) = 'null'),
         (SELECT min(i.ord) FROM unnest(p_payloads) WITH ORDINALITY AS i(payload, ord)
          WHERE octet_length(i.payload::text) > q.max_payload_bytes),
         EXISTS (SELECT 1 FROM unnest(p_dedup_keys) AS k WHERE length(k) NOT BETWEEN 1 AND 256)
           OR EXISTS (SELECT 1 FROM unnest(p_group_keys) AS k WHERE length(k) NOT BETWEEN 1 AND 256),
         EXISTS (SELECT 1 FROM unnest(p_run_ats) AS r WHERE r > now() + interval '1 year'),
         EXISTS (SELECT 1 FROM unnest(p_headers) AS h WHERE jsonb_typeof(h) <> 'object')
    INTO v_max_bytes, v_null_payload, v_large_payload, v_bad_key, v_far_run_at, v_bad_headers
  FROM holdline.queues q
  WHERE q.name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue USING ERRCODE = 'HL404';
  END IF;
  IF v_n = 0 THEN
    RETURN;
  END IF;
  IF (p_run_ats IS NOT NULL AND cardinality(p_run_ats) <> v_n)
     OR (p_priorities IS NOT NULL AND cardinality(p_priorities) <> v_n)
     OR (p_dedup_keys IS NOT NULL AND cardinality(p_dedup_keys) <> v_n)
     OR (p_group_keys IS NOT NULL AND cardinality(p_group_keys) <> v_n)
     OR (p_headers IS NOT NULL AND cardinality(p_headers) <> v_n) THEN
    RAISE EXCEPTION 'every array passed to send_batch must have one element per payload'
      USING ERRCODE = 'HL400';
  END IF;
  IF v_null_payload IS NOT NULL THEN
    RAISE EXCEPTION 'message % has no payload (SQL NULL and JSON null are refused)', v_null_payload
      USING ERRCODE = 'HL400';
  END IF;
  IF v_large_payload IS NOT NULL THEN
    RAISE EXCEPTION 'message % has a payload of % bytes; queue "%" accepts at most % bytes',
      v_large_payload, octet_length(p_payloads[v_large_payload]::text), p_queue, v_max_bytes
      USING ERRCODE = 'HL413';
  END IF;
  IF v_bad_key THEN
    RAISE EXCEPTION 'dedup and group keys must be 1 to 256 characters' USING ERRCODE = 'HL400';
  END IF;
  IF v_far_run_at THEN
    RAISE EXCEPTION 'run_at must be at most one year ahead' USING ERRCODE = 'HL400';
  END IF;
  IF v_bad_headers THEN
    RAISE EXCEPTION 'headers must be a JSON object' USING ERRCODE = 'HL400';
  END IF;

  -- Ids are drawn in input order, so a batch keeps its order (FIFO ties break on id) and each
  -- input row knows its id even when ON CONFLICT skips it. The identity's sequence by name:
  -- pg_get_serial_sequence would look it up in the catalog on every call.
  SELECT array_agg(nextval('holdline.messages_id_seq') ORDER BY g)
    INTO v_ids FROM generate_series(1, v_n) AS g;

  INSERT INTO holdline.messages (id, queue, payload, run_at, priority, dedup_key, group_key, headers)
  OVERRIDING SYSTEM VALUE
  SELECT i.id, p_queue, i.payload, coalesce(i.run_at, now()), coalesce(i.priority, 0),
         i.dedup_key, i.group_key, i.headers
  FROM unnest(v_ids, p_payloads, coalesce(p_run_ats, array_fill(NULL::timestamptz, ARRAY[v_n])),
              coalesce(p_priorities, array_fill(NULL::integer, ARRAY[v_n])),
              coalesce(p_dedup_keys, array_fill(NULL::text, ARRAY[v_n])),
              coalesce(p_group_keys, array_fill(NULL::text, ARRAY[v_n])),
              coalesce(p_headers, array_fill(NULL::jsonb, ARRAY[v_n])))
       AS i(id, payload, run_at, priority, dedup_key, group_key, headers)
  ORDER BY i.id
  ON CONFLICT (queue, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING;

  PERFORM holdline.wake(p_queue);

  -- A new statement: in READ COMMITTED it sees a conflicting message that a concurrent
  -- transaction committed while ON CONFLICT waited for it.
  RETURN QUERY
  SELECT m.*
  FROM unnest(v_ids, coalesce(p_dedup_keys, array_fill(NULL::text, ARRAY[v_n])))
       WITH ORDINALITY AS i(id, dedup_key, ord)
  JOIN holdline.messages m
    ON m.id = i.id OR (i.dedup_key IS NOT NULL AND m.queue = p_queue AND m.dedup_key = i.dedup_key)
  ORDER BY i.ord;
  GET DIAGNOSTICS v_found = ROW_COUNT;
  IF v_found <> v_n THEN
    -- The message holding a dedup key was acked between our insert and this read.
    RAISE EXCEPTION 'a deduplicated message was removed while sending; retry the send'
      USING ERRCODE = '40001';
  END IF;
END
$$;

-- The SQL contract's single send. delay_seconds: 0 to 31,536,000 (one year).
CREATE FUNCTION holdline.send(
  queue text,
  payload jsonb,
  delay_seconds integer DEFAULT 0,
  priority integer DEFAULT 0,
  dedup_key text DEFAULT NULL,
  group_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  IF delay_seconds IS NULL OR delay_seconds NOT BETWEEN 0 AND 31536000 THEN
    RAISE EXCEPTION 'delay_seconds must be between 0 and 31536000, got %', delay_seconds
      USING ERRCODE = 'HL400';
  END IF;
  SELECT m.id INTO v_id
  FROM holdline.send_batch(queue, ARRAY[payload], ARRAY[now() + make_interval(secs => delay_seconds)],
                           ARRAY[priority], ARRAY[dedup_key], ARRAY[group_key], ARRAY[headers]) AS m;
  RETURN v_id;
END
$$;

-- The queues bound to a pattern that matches the topic, by name.
CREATE FUNCTION holdline.bound_queues(topic text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
  SELECT DISTINCT b.queue FROM holdline.topic_bindings b
  WHERE '.' || topic ~ b.pattern_regex
  ORDER BY b.queue
$$;

-- Copies a message into every queue bound to a pattern matching the topic, in one
-- transaction. Returns the message ids, one per matching queue in queue-name order; an
-- unroutable topic returns an empty array.
CREATE FUNCTION holdline.publish(
  topic text,
  payload jsonb,
  delay_seconds integer DEFAULT 0,
  priority integer DEFAULT 0,
  dedup_key text DEFAULT NULL,
  group_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
  v_queue text;
  v_ids bigint[] := ARRAY[]::bigint[];
BEGIN
  IF topic IS NULL OR length(topic) > 255 OR topic !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$' THEN
    RAISE EXCEPTION 'topic must be dot-separated words of letters, digits, _ and -, at most 255 characters'
      USING ERRCODE = 'HL400';
  END IF;
  FOR v_queue IN SELECT holdline.bound_queues(topic) LOOP
    v_ids := v_ids || holdline.send(v_queue, payload, delay_seconds, priority, dedup_key, group_key, headers);
  END LOOP;
  RETURN v_ids;
END
$$;

-- Leases up to p_max deliverable messages of one queue in delivery order (priority desc,
-- run_at, id), skipping rows other consumers hold. A message with a group key is deliverable
-- only while no earlier message of its group is in the queue, so a group has at most one in
-- flight and runs in send order. A paused queue delivers nothing. Uses messages_receive_idx
-- for the scan and messages_group_idx for the group probe. Being plpgsql, its plan is cached
-- per connection, which makes it a prepared statement that also works behind PgBouncer.
CREATE FUNCTION holdline.receive(
  p_queue text,
  p_max integer,
  p_visibility_timeout_seconds integer DEFAULT NULL,
  p_now timestamptz DEFAULT NULL
) RETURNS SETOF holdline.messages
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_queue holdline.queues;
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
    SET lease_token = gen_random_uuid(),
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

-- Ends the leases of already locked messages after a failure: a message that has used its
-- queue's max_attempts moves to the dead-letter queue (created on demand) with its origin
-- queue and last error kept; any other becomes deliverable again after p_delay_seconds, or
-- after the queue's backoff when that is NULL. Callers lock the rows first (FOR UPDATE).
CREATE FUNCTION holdline.retry_or_dead_letter(
  p_ids bigint[], p_delay_seconds double precision, p_error text, p_now timestamptz
) RETURNS TABLE (id bigint, queue text, dead_letter_queue text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO holdline.queues (name)
  SELECT DISTINCT q.dead_letter_queue
  FROM holdline.messages m JOIN holdline.queues q ON q.name = m.queue
  WHERE m.id = ANY (p_ids) AND m.attempts >= q.max_attempts AND q.dead_letter_queue IS NOT NULL
  ON CONFLICT (name) DO NOTHING;

  RETURN QUERY
  WITH failed AS (
    SELECT m.id, m.queue,
           CASE WHEN m.attempts >= q.max_attempts THEN q.dead_letter_queue END AS dlq,
           coalesce(p_delay_seconds,
                    holdline.backoff_seconds(m.attempts, q.backoff_initial_seconds, q.backoff_max_seconds)) AS delay
    FROM holdline.messages m JOIN holdline.queues q ON q.name = m.queue
    WHERE m.id = ANY (p_ids)
  ), updated AS (
    UPDATE holdline.messages m
    SET queue = coalesce(f.dlq, m.queue),
        origin_queue = CASE WHEN f.dlq IS NULL THEN m.origin_queue ELSE m.queue END,
        dead_lettered_at = CASE WHEN f.dlq IS NULL THEN m.dead_lettered_at ELSE p_now END,
        -- the dedup key belongs to the origin queue's live messages, not to its dead letters
        dedup_key = CASE WHEN f.dlq IS NULL THEN m.dedup_key END,
        run_at = CASE WHEN f.dlq IS NULL THEN p_now + make_interval(secs => f.delay) ELSE p_now END,
        lease_token = NULL,
        lease_expires_at = NULL,
        last_error = coalesce(p_error, m.last_error)
    FROM failed f
    WHERE m.id = f.id
    RETURNING m.id, f.queue, f.dlq
  )
  SELECT u.id, u.queue, u.dlq FROM updated u;
END
$$;

-- Nacks one delivery, fenced by its lease token. Returns one row: the outcome ('retried' or
-- 'dead_lettered') and the queue the message was in; no row when the lease is no longer this
-- receipt's (nothing is changed then).
CREATE FUNCTION holdline.nack(
  p_id bigint, p_lease_token uuid, p_delay_seconds double precision DEFAULT NULL,
  p_error text DEFAULT NULL, p_now timestamptz DEFAULT NULL
) RETURNS TABLE (outcome text, queue text)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_row record;
BEGIN
  IF p_delay_seconds < 0 OR p_delay_seconds > 31536000 THEN
    RAISE EXCEPTION 'delay_seconds must be between 0 and 31536000' USING ERRCODE = 'HL400';
  END IF;
  PERFORM 1 FROM holdline.messages m WHERE m.id = p_id AND m.lease_token = p_lease_token FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT * INTO v_row FROM holdline.retry_or_dead_letter(ARRAY[p_id], p_delay_seconds, p_error, v_now);
  PERFORM holdline.wake(coalesce(v_row.dead_letter_queue, v_row.queue));
  outcome := CASE WHEN v_row.dead_letter_queue IS NULL THEN 'retried' ELSE 'dead_lettered' END;
  queue := v_row.queue;
  RETURN NEXT;
END
$$;

-- The reaper's pass over expired leases: up to p_limit of them, oldest expiry first, treated
-- as a failed delivery (backoff, or dead-lettering once max_attempts is used). Rows another
-- transaction holds (an ack in flight) are skipped. Returns counts per queue and outcome.
CREATE FUNCTION holdline.reap_expired_leases(p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (queue text, dead_letter_queue text, messages integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_ids bigint[];
BEGIN
  SELECT array_agg(expired.id) INTO v_ids FROM (
    SELECT m.id FROM holdline.messages m
    WHERE m.lease_token IS NOT NULL AND m.lease_expires_at <= v_now
    ORDER BY m.lease_expires_at
    LIMIT p_limit
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

-- Moves up to p_max dead letters whose origin is p_origin_queue back to it, ready now, with
-- attempts reset (as SQS redrive does). Returns how many moved.
CREATE FUNCTION holdline.redrive(p_origin_queue text, p_max integer DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_moved integer;
BEGIN
  IF p_max < 1 THEN
    RAISE EXCEPTION 'max must be at least 1 (or NULL for all), got %', p_max USING ERRCODE = 'HL400';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM holdline.queues WHERE name = p_origin_queue) THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_origin_queue USING ERRCODE = 'HL404';
  END IF;
  PERFORM pg_advisory_xact_lock_shared(1212961868, hashtext(p_origin_queue));
  WITH dead AS (
    SELECT m.id FROM holdline.messages m
    WHERE m.origin_queue = p_origin_queue AND m.lease_token IS NULL
    ORDER BY m.id
    LIMIT p_max
    FOR UPDATE SKIP LOCKED
  )
  UPDATE holdline.messages m
  SET queue = p_origin_queue, origin_queue = NULL, dead_lettered_at = NULL, attempts = 0,
      run_at = now()
  FROM dead WHERE m.id = dead.id;
  GET DIAGNOSTICS v_moved = ROW_COUNT;
  IF v_moved > 0 THEN
    PERFORM holdline.wake(p_origin_queue);
  END IF;
  RETURN v_moved;
END
$$;

-- Message counts per queue. ready: deliverable now (run_at passed, not leased); delayed: not
-- yet due; leased: held by a consumer; oldest_ready_age: seconds the longest-waiting ready
-- message has been ready.
CREATE VIEW holdline.queue_stats AS
SELECT q.name AS queue,
       count(m.id) FILTER (WHERE m.lease_token IS NULL AND m.run_at <= now()) AS ready,
       count(m.id) FILTER (WHERE m.lease_token IS NULL AND m.run_at > now()) AS delayed,
       count(m.id) FILTER (WHERE m.lease_token IS NOT NULL) AS leased,
       count(m.id) AS total,
       extract(epoch FROM now() - min(m.run_at) FILTER (WHERE m.lease_token IS NULL AND m.run_at <= now()))::double precision
         AS oldest_ready_age
FROM holdline.queues q
LEFT JOIN holdline.messages m ON m.queue = q.name
GROUP BY q.name;

-- Messages that were dead-lettered and not yet redriven or consumed.
CREATE VIEW holdline.dead_letters AS
SELECT m.id, m.queue, m.origin_queue, m.attempts, m.last_error, m.payload, m.headers,
       m.dead_lettered_at, m.created_at
FROM holdline.messages m
WHERE m.origin_queue IS NOT NULL;
