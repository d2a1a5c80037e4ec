-- 0040: holdline.messages becomes a table partitioned by queue (PARTITION BY LIST (queue)),
-- a partition per queue, so that a queue's indexes hold only its own messages and carry no
-- queue column (issue 16; docs/performance.md, "Storage"). The parent keeps every column in
-- its order, the identity and its sequence, so holdline.send, holdline.publish, the views and
-- `SELECT * FROM holdline.messages` read as before; a statement that names its queue
-- (`WHERE queue = …`) reads that queue's partition alone.
--
-- What changes:
-- * A partition is made with its queue (a trigger on holdline.queues, so queues inserted with
--   plain SQL get one too), and for a queue's dead-letter queue as soon as the queue names
--   it, so that dead-lettering in a nack or the reaper never runs DDL. The partition is made
--   with CREATE TABLE then ALTER TABLE … ATTACH PARTITION, which takes SHARE UPDATE EXCLUSIVE
--   on the parent (sends, receives and acks go on), never CREATE TABLE … PARTITION OF, which
--   takes ACCESS EXCLUSIVE. holdline.message_partitions names each partition and numbers it.
-- * A lease token carries its partition's number in its first four bytes (byte 15 stays the
--   flow stripe of 0031), so an ack, a nack or an extension reads one partition. A token
--   whose prefix names no partition, or the wrong one (receipts issued before this
--   migration), is looked for in every partition, once: old receipts stay valid.
-- * Moves between queues (dead-lettering, redrive, bulk moves) DELETE the locked rows from
--   one partition and INSERT them into another, keeping ids: a concurrent ack of a moved row
--   then finds no row (LEASE_LOST) rather than a "moved to another partition" error.
-- * holdline.purge_queue TRUNCATEs the queue's partition when it gets the lock within 100 ms
--   (else DELETEs), holdline.delete_queue_messages DROPs it likewise.
-- * Ids are unique per partition (its primary key) and across the table by the sequence: a
--   partitioned table's primary key would have to include the queue in every entry.
--
-- Existing rows move into their queue's partition keeping ids, lease tokens, expiries and
-- attempts. Locks: ACCESS EXCLUSIVE on holdline.messages for the whole migration (the copy
-- is proportional to the messages queued); sends, receives and acks wait for it.

CREATE TABLE holdline.message_partitions (
  id integer GENERATED ALWAYS AS IDENTITY UNIQUE,
  queue text PRIMARY KEY,
  table_name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE holdline.message_partitions IS
  'One row per partition of holdline.messages: the queue whose messages it holds and its table; '
  'id is the number new lease tokens carry in their first four bytes.';

-- The old table steps aside; its views go and come back below over the new one.
DROP VIEW holdline.dead_letters;
DROP VIEW holdline.queue_waiting;
DROP VIEW holdline.queue_stats;
ALTER TABLE holdline.messages RENAME TO messages_0039;
ALTER SEQUENCE holdline.messages_id_seq RENAME TO messages_0039_id_seq;
DROP INDEX holdline.messages_receive_idx, holdline.messages_leased_idx,
  holdline.messages_dedup_idx, holdline.messages_group_idx, holdline.messages_origin_idx;
ALTER TABLE holdline.messages_0039 DROP CONSTRAINT messages_pkey;

CREATE TABLE holdline.messages (
  id bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME holdline.messages_id_seq),
  queue text NOT NULL,
  payload jsonb NOT NULL,
  headers jsonb,
  priority integer NOT NULL DEFAULT 0,
  run_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  lease_token uuid,
  lease_expires_at timestamptz,
  dedup_key text,
  group_key text,
  origin_queue text,
  last_error text,
  dead_lettered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY LIST (queue);

-- Each partition gets these (ATTACH PARTITION builds them on the empty table). Within a
-- partition the queue is fixed, so no index leads with it, except the dedup key's: a
-- unique index of a partitioned table must contain the partition key (it is partial, so
-- only messages with a dedup key pay for it).
CREATE INDEX messages_receive_idx ON holdline.messages (priority DESC, run_at, id)
  WHERE lease_token IS NULL;
CREATE INDEX messages_leased_idx ON holdline.messages (lease_expires_at)
  WHERE lease_token IS NOT NULL;
CREATE UNIQUE INDEX messages_dedup_idx ON holdline.messages (queue, dedup_key)
  WHERE dedup_key IS NOT NULL;
CREATE INDEX messages_group_idx ON holdline.messages (group_key, id) WHERE group_key IS NOT NULL;
CREATE INDEX messages_origin_idx ON holdline.messages (origin_queue, id)
  WHERE origin_queue IS NOT NULL;

-- Makes queue p_queue's partition unless it has one. DDL: not for hot paths, which find the
-- partition made when the queue (or the queue naming it as dead-letter queue) was.
CREATE FUNCTION holdline.ensure_message_partition(p_queue text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_id integer;
  v_table text;
BEGIN
  IF EXISTS (SELECT FROM holdline.message_partitions p WHERE p.queue = p_queue) THEN
    RETURN;
  END IF;
  -- A concurrent maker of the same partition waits here for our commit, then finds it.
  INSERT INTO holdline.message_partitions AS p (queue, table_name)
  VALUES (p_queue, 'messages_' || md5(p_queue))
  ON CONFLICT (queue) DO NOTHING
  RETURNING p.id INTO v_id;
  IF v_id IS NULL THEN
    RETURN;
  END IF;
  v_table := 'messages_' || v_id;
  UPDATE holdline.message_partitions p SET table_name = v_table WHERE p.id = v_id;
  -- Storage settings of 0001's table, now per queue: each queue vacuums on its own.
  EXECUTE format(
    'CREATE TABLE holdline.%I (LIKE holdline.messages, PRIMARY KEY (id))
     WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0,
           autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0,
           autovacuum_vacuum_insert_threshold = 20000, autovacuum_analyze_scale_factor = 0.05,
           autovacuum_vacuum_cost_delay = 0)', v_table);
  EXECUTE format('ALTER TABLE holdline.messages ATTACH PARTITION holdline.%I FOR VALUES IN (%L)',
                 v_table, p_queue);
END
$$;

-- A queue row, however inserted, gets its partition, and its dead-letter queue one too.
CREATE FUNCTION holdline.queues_make_partitions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM holdline.ensure_message_partition(NEW.name);
  END IF;
  IF NEW.dead_letter_queue IS NOT NULL THEN
    PERFORM holdline.ensure_message_partition(NEW.dead_letter_queue);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER queues_make_partitions
  AFTER INSERT OR UPDATE OF dead_letter_queue ON holdline.queues
  FOR EACH ROW EXECUTE FUNCTION holdline.queues_make_partitions();

-- Partitions for every queue, every dead-letter queue named, and any queue name the old
-- table holds rows of.
SELECT holdline.ensure_message_partition(n.name)
FROM (SELECT q.name FROM holdline.queues q
      UNION SELECT q.dead_letter_queue FROM holdline.queues q WHERE q.dead_letter_queue IS NOT NULL
      UNION SELECT DISTINCT o.queue FROM holdline.messages_0039 o) n
ORDER BY n.name;

INSERT INTO holdline.messages OVERRIDING SYSTEM VALUE
SELECT * FROM holdline.messages_0039 ORDER BY id;
SELECT setval('holdline.messages_id_seq', s.last_value, s.is_called)
FROM holdline.messages_0039_id_seq s;

-- The partition number a lease token carries in its first four bytes (see receive).
CREATE FUNCTION holdline.lease_token_partition(p_lease_token uuid) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT ('x' || left(p_lease_token::text, 8))::bit(32)::integer
$$;

-- The queue whose partition a lease token names; NULL when it names none.
CREATE FUNCTION holdline.lease_token_queue(p_lease_token uuid) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT p.queue FROM holdline.message_partitions p
  WHERE p.id = holdline.lease_token_partition(p_lease_token)
$$;

-- The queues whose partitions the lease tokens name, once each. A receive gives its whole
-- batch one token (0006), so a batch's receipts share a few tokens: each distinct token is
-- decoded once and holdline.message_partitions read once per partition, not per receipt.
CREATE FUNCTION holdline.lease_token_queues(p_lease_tokens uuid[]) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT p.queue FROM holdline.message_partitions p
  WHERE p.id IN (SELECT holdline.lease_token_partition(t.lease_token)
                 FROM (SELECT DISTINCT u.lease_token FROM unnest(p_lease_tokens) AS u(lease_token)) t)
$$;

-- LOUD: the fenced statements below compare lease tokens with IS NOT DISTINCT FROM (after
-- checking the given token is not NULL, so the fence is unchanged), never with "=". From
-- "m.lease_token = $token" the planner proves messages_leased_idx's predicate (lease_token
-- IS NOT NULL) and may read that index whole instead of the primary key: its statistics,
-- taken while nothing was leased, call it empty. Measured in W3: a generic plan of the
-- batch ack did that for each receipt, and a drain fell from 30,000 to 2,500 messages a
-- second, each ack of 1,000 scanning the thousands of live leases a thousand times.

-- A statement over every partition (a lookup by id alone) is estimated at a row per
-- partition, and its cost grows with their number until it passes jit_above_cost, when JIT
-- compiles it for longer than it runs (measured: 1.5 s for a message's position with four
-- queues). The functions that hold such statements run with JIT off; ordinary queue
-- statements never gain from it.

-- Functions returning SETOF holdline.messages returned the old table's row type: they are
-- made again over the new one, with their bodies of 0031, 0025 and 0009 and these changes:
-- receive puts the partition number into the lease token and names its queue in the update;
-- extend_lease reads the token's partition first; send_batch reads its rows back from its
-- queue's partition.
DROP FUNCTION holdline.receive(text, integer, integer, timestamptz);
DROP FUNCTION holdline.extend_lease(bigint, uuid, integer, timestamptz);
DROP FUNCTION holdline.send_one(text, jsonb, timestamptz, integer, text, text, jsonb);
DROP FUNCTION holdline.send_batch(text, jsonb[], timestamptz[], integer[], text[], text[], jsonb[]);
DROP TABLE holdline.messages_0039;

CREATE FUNCTION holdline.receive(p_queue text, p_max integer, p_visibility_timeout_seconds integer DEFAULT NULL::integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS SETOF holdline.messages
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

CREATE FUNCTION holdline.extend_lease(p_id bigint, p_lease_token uuid, p_seconds integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS SETOF holdline.messages
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
DECLARE
  v_queue text := holdline.lease_token_queue(p_lease_token);
BEGIN
  -- Bounds as in src/queue/validation.ts (LEASE_MAX_SECONDS): below 1 the lease would end
  -- before the call returns, and NULL would clear the expiry of a leased message.
  IF p_seconds IS NULL OR p_seconds NOT BETWEEN 1 AND 43200 THEN
    RAISE EXCEPTION 'seconds must be between 1 and 43200, got %', p_seconds USING ERRCODE = 'HL400';
  END IF;
  IF v_queue IS NOT NULL THEN
    RETURN QUERY
    UPDATE holdline.messages m
    SET lease_expires_at = coalesce(p_now, now()) + make_interval(secs => p_seconds)
    WHERE m.queue = v_queue AND m.id = p_id AND p_lease_token IS NOT NULL
      AND m.lease_token IS NOT DISTINCT FROM p_lease_token
    RETURNING m.*;
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;
  -- A token from before 0040: every partition.
  RETURN QUERY
  UPDATE holdline.messages m
  SET lease_expires_at = coalesce(p_now, now()) + make_interval(secs => p_seconds)
  WHERE m.id = p_id AND p_lease_token IS NOT NULL
      AND m.lease_token IS NOT DISTINCT FROM p_lease_token
  RETURNING m.*;
END
$$;

CREATE FUNCTION holdline.send_batch(p_queue text, p_payloads jsonb[], p_run_ats timestamp with time zone[] DEFAULT NULL::timestamp with time zone[], p_priorities integer[] DEFAULT NULL::integer[], p_dedup_keys text[] DEFAULT NULL::text[], p_group_keys text[] DEFAULT NULL::text[], p_headers jsonb[] DEFAULT NULL::jsonb[]) RETURNS SETOF holdline.messages
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
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
    ON m.queue = p_queue
   AND (m.id = i.id OR (i.dedup_key IS NOT NULL AND m.dedup_key = i.dedup_key))
  ORDER BY i.ord;
  GET DIAGNOSTICS v_found = ROW_COUNT;
  IF v_found <> v_n THEN
    -- The message holding a dedup key was acked between our insert and this read.
    RAISE EXCEPTION 'a deduplicated message was removed while sending; retry the send'
      USING ERRCODE = '40001';
  END IF;
END
$$;


CREATE FUNCTION holdline.send_one(p_queue text, p_payload jsonb, p_run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_priority integer DEFAULT NULL::integer, p_dedup_key text DEFAULT NULL::text, p_group_key text DEFAULT NULL::text, p_headers jsonb DEFAULT NULL::jsonb) RETURNS SETOF holdline.messages
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_max_bytes integer;
BEGIN
  SELECT q.max_payload_bytes INTO v_max_bytes FROM holdline.queues q WHERE q.name = p_queue;
  IF octet_length(p_payload::text) > v_max_bytes THEN
    RAISE EXCEPTION 'the payload is % bytes; queue "%" accepts at most % bytes',
      octet_length(p_payload::text), p_queue, v_max_bytes
      USING ERRCODE = 'HL413';
  END IF;
  RETURN QUERY
  SELECT * FROM holdline.send_batch(p_queue, ARRAY[p_payload], ARRAY[p_run_at],
                                    ARRAY[p_priority], ARRAY[p_dedup_key], ARRAY[p_group_key],
                                    ARRAY[p_headers]);
END
$$;

-- Deletes the deliveries (ids with their lease tokens) that hold their lease, archiving them
-- when some queue archives (0010), from queue p_queue's partition, or from every partition
-- when p_queue is NULL, kept there to the queues matching p_queue_patterns (NULL: any).
-- Rows acked, as the ack functions return them.
CREATE FUNCTION holdline.ack_in_partition(p_queue text, p_ids bigint[], p_lease_tokens uuid[], p_queue_patterns text[]) RETURNS TABLE(id bigint, queue text, age_seconds double precision)
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
DECLARE
  v_archiving boolean := EXISTS (SELECT FROM holdline.queues q WHERE q.archive_seconds > 0);
BEGIN
  IF p_queue IS NOT NULL AND NOT v_archiving THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.queue = p_queue AND m.id = r.id AND r.lease_token IS NOT NULL AND m.lease_token IS NOT DISTINCT FROM r.lease_token
    RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
  ELSIF p_queue IS NOT NULL THEN
    RETURN QUERY
    WITH acked AS (
      DELETE FROM holdline.messages m
      USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
      WHERE m.queue = p_queue AND m.id = r.id AND r.lease_token IS NOT NULL AND m.lease_token IS NOT DISTINCT FROM r.lease_token
      RETURNING m.*
    ), archived AS (
      INSERT INTO holdline.message_archive
        (id, queue, payload, headers, priority, attempts, group_key, sent_at, acked_at)
      SELECT k.id, k.queue, k.payload, k.headers, k.priority, k.attempts, k.group_key,
             k.created_at, now()
      FROM acked k JOIN holdline.queues q ON q.name = k.queue
      WHERE q.archive_seconds > 0
    )
    SELECT k.id, k.queue, extract(epoch FROM clock_timestamp() - k.created_at)::double precision
    FROM acked k;
  ELSIF NOT v_archiving THEN
    RETURN QUERY
    DELETE FROM holdline.messages m
    USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
    WHERE m.id = r.id AND r.lease_token IS NOT NULL AND m.lease_token IS NOT DISTINCT FROM r.lease_token
      AND (p_queue_patterns IS NULL OR m.queue LIKE ANY (p_queue_patterns))
    RETURNING m.id, m.queue, extract(epoch FROM clock_timestamp() - m.created_at)::double precision;
  ELSE
    RETURN QUERY
    WITH acked AS (
      DELETE FROM holdline.messages m
      USING unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
      WHERE m.id = r.id AND r.lease_token IS NOT NULL AND m.lease_token IS NOT DISTINCT FROM r.lease_token
        AND (p_queue_patterns IS NULL OR m.queue LIKE ANY (p_queue_patterns))
      RETURNING m.*
    ), archived AS (
      INSERT INTO holdline.message_archive
        (id, queue, payload, headers, priority, attempts, group_key, sent_at, acked_at)
      SELECT k.id, k.queue, k.payload, k.headers, k.priority, k.attempts, k.group_key,
             k.created_at, now()
      FROM acked k JOIN holdline.queues q ON q.name = k.queue
      WHERE q.archive_seconds > 0
    )
    SELECT k.id, k.queue, extract(epoch FROM clock_timestamp() - k.created_at)::double precision
    FROM acked k;
  END IF;
END
$$;

-- The capped queues among those the lease tokens name (0032 read them from the leased rows;
-- the token's partition says the same for a live lease without reading them). A token from
-- before 0040 names none: its ack wakes no one, and consumers find the slot at their poll.
CREATE OR REPLACE FUNCTION holdline.capped_queues_of_leases(p_ids bigint[], p_lease_tokens uuid[]) RETURNS text[]
    LANGUAGE sql STABLE
    AS $$
  SELECT array_agg(q.name)
  FROM holdline.lease_token_queues(p_lease_tokens) AS t(queue)
  JOIN holdline.queues q ON q.name = t.queue AND q.max_in_flight IS NOT NULL
$$;

-- The acks of 0032 (same signatures, same results), each partition the tokens name read
-- once, then every partition once for what is left (receipts from before 0040, lost leases).
CREATE OR REPLACE FUNCTION holdline.ack_batch(p_ids bigint[], p_lease_tokens uuid[], p_queue_patterns text[]) RETURNS TABLE(id bigint, queue text, age_seconds double precision)
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_capped text[];
  v_queue text;
  v_rows integer;
  v_acked integer := 0;
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  IF EXISTS (SELECT FROM holdline.queues c WHERE c.max_in_flight IS NOT NULL) THEN
    -- A queue outside the patterns is left alone, so it is not woken either.
    SELECT array_agg(c) INTO v_capped
    FROM unnest(holdline.capped_queues_of_leases(p_ids, p_lease_tokens)) AS c
    WHERE p_queue_patterns IS NULL OR c LIKE ANY (p_queue_patterns);
  END IF;
  FOR v_queue IN SELECT t.queue FROM holdline.lease_token_queues(p_lease_tokens) AS t(queue) LOOP
    CONTINUE WHEN NOT (p_queue_patterns IS NULL OR v_queue LIKE ANY (p_queue_patterns));
    RETURN QUERY SELECT a.id, a.queue, a.age_seconds
                 FROM holdline.ack_in_partition(v_queue, p_ids, p_lease_tokens, NULL) a;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_acked := v_acked + v_rows;
  END LOOP;
  IF v_acked < coalesce(cardinality(p_ids), 0) THEN
    RETURN QUERY SELECT a.id, a.queue, a.age_seconds
                 FROM holdline.ack_in_partition(NULL, p_ids, p_lease_tokens, p_queue_patterns) a;
  END IF;
  PERFORM holdline.wake(c) FROM unnest(v_capped) AS c;
END
$$;

CREATE OR REPLACE FUNCTION holdline.ack_batch(p_ids bigint[], p_lease_tokens uuid[]) RETURNS TABLE(id bigint, queue text, age_seconds double precision)
    LANGUAGE sql
    AS $$
  SELECT a.id, a.queue, a.age_seconds FROM holdline.ack_batch(p_ids, p_lease_tokens, NULL) a
$$;

CREATE OR REPLACE FUNCTION holdline.ack(p_id bigint, p_lease_token uuid) RETURNS TABLE(queue text, age_seconds double precision)
    LANGUAGE sql
    AS $$
  SELECT a.queue, a.age_seconds FROM holdline.ack_batch(ARRAY[p_id], ARRAY[p_lease_token], NULL) a
$$;

-- 0025's check, on the partitions the tokens name (then every partition for the rest).
CREATE OR REPLACE FUNCTION holdline.ack_batch_within(p_ids bigint[], p_lease_tokens uuid[], p_queue_patterns text[]) RETURNS TABLE(id bigint, queue text, age_seconds double precision)
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
DECLARE
  v_outside text;
  v_queue text;
  v_rows integer;
  v_found integer := 0;
BEGIN
  IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_lease_tokens) THEN
    RAISE EXCEPTION 'ids and lease_tokens must have the same length' USING ERRCODE = 'HL400';
  END IF;
  -- A live lease fixes its message's queue (moving or dead-lettering a message ends its lease),
  -- and so its partition: what this finds is what the delete below would touch.
  FOR v_queue IN SELECT t.queue FROM holdline.lease_token_queues(p_lease_tokens) AS t(queue) LOOP
    SELECT count(*) INTO v_rows
    FROM holdline.messages m
    JOIN unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
      ON m.id = r.id AND r.lease_token IS NOT NULL AND m.lease_token IS NOT DISTINCT FROM r.lease_token
    WHERE m.queue = v_queue;
    IF v_rows > 0 AND NOT (v_queue LIKE ANY (coalesce(p_queue_patterns, '{}'))) THEN
      v_outside := v_queue;
      EXIT;
    END IF;
    v_found := v_found + v_rows;
  END LOOP;
  IF v_outside IS NULL AND v_found < coalesce(cardinality(p_ids), 0) THEN
    -- Tokens that name no partition, or not the one holding their message (from before
    -- 0040), or lost leases: every partition.
    SELECT m.queue INTO v_outside
    FROM holdline.messages m
    JOIN unnest(p_ids, p_lease_tokens) AS r(id, lease_token)
      ON m.id = r.id AND r.lease_token IS NOT NULL AND m.lease_token IS NOT DISTINCT FROM r.lease_token
    WHERE m.queue IS DISTINCT FROM holdline.lease_token_queue(r.lease_token)
      AND NOT (m.queue LIKE ANY (coalesce(p_queue_patterns, '{}')))
    LIMIT 1;
  END IF;
  IF v_outside IS NOT NULL THEN
    RAISE EXCEPTION 'a delivery is in a queue outside the caller''s'
      USING ERRCODE = 'HL403', DETAIL = v_outside;
  END IF;
  RETURN QUERY SELECT a.id, a.queue, a.age_seconds FROM holdline.ack_batch(p_ids, p_lease_tokens) a;
END
$$;

-- 0002's retry or dead-letter of locked deliveries, now of one queue's partition: a retried
-- message is updated in place; a dead one is deleted from the partition and inserted into its
-- dead-letter queue's (made with the queue, or when the queue named it), keeping its id.
DROP FUNCTION holdline.retry_or_dead_letter(bigint[], double precision, text, timestamptz);
CREATE FUNCTION holdline.retry_or_dead_letter(p_queue text, p_ids bigint[], p_delay_seconds double precision, p_error text, p_now timestamp with time zone) RETURNS TABLE(id bigint, queue text, dead_letter_queue text)
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_queue holdline.queues;
BEGIN
  SELECT * INTO v_queue FROM holdline.queues q WHERE q.name = p_queue;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF v_queue.dead_letter_queue IS NOT NULL
     AND EXISTS (SELECT FROM holdline.messages m
                 WHERE m.queue = p_queue AND m.id = ANY (p_ids)
                   AND m.attempts >= v_queue.max_attempts) THEN
    -- Its partition exists since this queue named it (queues_make_partitions).
    INSERT INTO holdline.queues (name) VALUES (v_queue.dead_letter_queue)
    ON CONFLICT (name) DO NOTHING;
  END IF;

  RETURN QUERY
  WITH failed AS (
    SELECT m.id,
           v_queue.dead_letter_queue IS NOT NULL AND m.attempts >= v_queue.max_attempts AS dies,
           coalesce(p_delay_seconds,
                    holdline.backoff_seconds(m.attempts, v_queue.backoff_initial_seconds,
                                             v_queue.backoff_max_seconds)) AS delay
    FROM holdline.messages m
    WHERE m.queue = p_queue AND m.id = ANY (p_ids)
  ), retried AS (
    UPDATE holdline.messages m
    SET run_at = p_now + make_interval(secs => f.delay),
        lease_token = NULL,
        lease_expires_at = NULL,
        last_error = coalesce(p_error, m.last_error)
    FROM failed f
    WHERE m.queue = p_queue AND m.id = f.id AND NOT f.dies
    RETURNING m.id
  ), dead AS (
    DELETE FROM holdline.messages m
    USING failed f
    WHERE m.queue = p_queue AND m.id = f.id AND f.dies
    RETURNING m.*
  ), moved AS (
    -- The dedup key belongs to the origin queue's live messages, not to its dead letters.
    INSERT INTO holdline.messages AS n (id, queue, payload, headers, priority, run_at, attempts,
                                        lease_token, lease_expires_at, dedup_key, group_key,
                                        origin_queue, last_error, dead_lettered_at, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT d.id, v_queue.dead_letter_queue, d.payload, d.headers, d.priority, p_now, d.attempts,
           NULL, NULL, NULL, d.group_key, p_queue, coalesce(p_error, d.last_error), p_now,
           d.created_at
    FROM dead d
    RETURNING n.id
  )
  SELECT r.id, p_queue, NULL::text FROM retried r
  UNION ALL
  SELECT v.id, p_queue, v_queue.dead_letter_queue FROM moved v;
END
$$;

CREATE OR REPLACE FUNCTION holdline.nack(p_id bigint, p_lease_token uuid, p_delay_seconds double precision DEFAULT NULL::double precision, p_error text DEFAULT NULL::text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(outcome text, queue text)
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_queue text := holdline.lease_token_queue(p_lease_token);
  v_found text;
  v_row record;
BEGIN
  IF p_delay_seconds < 0 OR p_delay_seconds > 31536000 THEN
    RAISE EXCEPTION 'delay_seconds must be between 0 and 31536000' USING ERRCODE = 'HL400';
  END IF;
  IF v_queue IS NOT NULL THEN
    SELECT m.queue INTO v_found FROM holdline.messages m
    WHERE m.queue = v_queue AND m.id = p_id AND p_lease_token IS NOT NULL
      AND m.lease_token IS NOT DISTINCT FROM p_lease_token
    FOR UPDATE;
  END IF;
  IF v_found IS NULL THEN
    -- A token from before 0040: every partition.
    SELECT m.queue INTO v_found FROM holdline.messages m
    WHERE m.id = p_id AND p_lease_token IS NOT NULL
      AND m.lease_token IS NOT DISTINCT FROM p_lease_token
    FOR UPDATE;
  END IF;
  IF v_found IS NULL THEN
    RETURN;
  END IF;
  SELECT * INTO v_row
  FROM holdline.retry_or_dead_letter(v_found, ARRAY[p_id], p_delay_seconds, p_error, v_now);
  PERFORM holdline.wake(coalesce(v_row.dead_letter_queue, v_row.queue));
  outcome := CASE WHEN v_row.dead_letter_queue IS NULL THEN 'retried' ELSE 'dead_lettered' END;
  queue := v_row.queue;
  RETURN NEXT;
END
$$;

-- 0002's reaper pass: the oldest expired leases across queues (each partition's
-- messages_leased_idx), then locked and requeued or dead-lettered queue by queue.
CREATE OR REPLACE FUNCTION holdline.reap_expired_leases(p_limit integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(queue text, dead_letter_queue text, messages integer)
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_queue text;
  v_candidates bigint[];
  v_ids bigint[];
  v_retried integer;
  v_dead integer;
  v_dlq text;
BEGIN
  FOR v_queue, v_candidates IN
    SELECT c.queue, array_agg(c.id)
    FROM (SELECT e.queue, e.id
          FROM holdline.queues q
          CROSS JOIN LATERAL (
            SELECT l.queue, l.id, l.lease_expires_at FROM holdline.messages l
            WHERE l.queue = q.name AND l.lease_token IS NOT NULL AND l.lease_expires_at <= v_now
            ORDER BY l.lease_expires_at
            LIMIT p_limit) e
          ORDER BY e.lease_expires_at
          LIMIT p_limit) c
    GROUP BY c.queue
    ORDER BY c.queue
  LOOP
    SELECT array_agg(x.id) INTO v_ids FROM (
      SELECT m.id FROM holdline.messages m
      WHERE m.queue = v_queue AND m.id = ANY (v_candidates)
        AND m.lease_token IS NOT NULL AND m.lease_expires_at <= v_now
      FOR UPDATE SKIP LOCKED
    ) x;
    CONTINUE WHEN v_ids IS NULL;
    SELECT count(*) FILTER (WHERE r.dead_letter_queue IS NULL),
           count(*) FILTER (WHERE r.dead_letter_queue IS NOT NULL),
           max(r.dead_letter_queue)
      INTO v_retried, v_dead, v_dlq
    FROM holdline.retry_or_dead_letter(v_queue, v_ids, NULL, 'lease expired', v_now) r;
    IF v_retried > 0 THEN
      queue := v_queue; dead_letter_queue := NULL; messages := v_retried;
      RETURN NEXT;
      PERFORM holdline.wake(v_queue);
    END IF;
    IF v_dead > 0 THEN
      queue := v_queue; dead_letter_queue := v_dlq; messages := v_dead;
      RETURN NEXT;
      PERFORM holdline.wake(v_dlq);
    END IF;
  END LOOP;
END
$$;

-- 0002's redrive: the dead letters of an origin queue (in whichever partitions hold them,
-- through messages_origin_idx) deleted there and inserted into the origin's, keeping ids.
CREATE OR REPLACE FUNCTION holdline.redrive(p_origin_queue text, p_max integer DEFAULT NULL::integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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
    SELECT m.queue, m.id FROM holdline.messages m
    WHERE m.origin_queue = p_origin_queue AND m.lease_token IS NULL
    ORDER BY m.id
    LIMIT p_max
    FOR UPDATE SKIP LOCKED
  ), taken AS (
    DELETE FROM holdline.messages m USING dead
    WHERE m.queue = dead.queue AND m.id = dead.id
    RETURNING m.*
  )
  INSERT INTO holdline.messages (id, queue, payload, headers, priority, run_at, attempts,
                                 dedup_key, group_key, last_error, created_at)
  OVERRIDING SYSTEM VALUE
  SELECT t.id, p_origin_queue, t.payload, t.headers, t.priority, now(), 0, t.dedup_key,
         t.group_key, t.last_error, t.created_at
  FROM taken t ORDER BY t.id;
  GET DIAGNOSTICS v_moved = ROW_COUNT;
  IF v_moved > 0 THEN
    PERFORM holdline.wake(p_origin_queue);
  END IF;
  RETURN v_moved;
END
$$;

-- Deletes every message of queue p_queue, leased ones included; how many. TRUNCATEs the
-- queue's partition when its lock comes within lock_timeout: waiting longer would hold up
-- every statement on holdline.messages queued behind the lock. Else a DELETE.
CREATE FUNCTION holdline.purge_queue(p_queue text) RETURNS bigint
    LANGUAGE plpgsql
    SET lock_timeout TO '100ms'
    AS $$
DECLARE
  v_table text;
  v_purged bigint;
BEGIN
  SELECT p.table_name INTO v_table FROM holdline.message_partitions p WHERE p.queue = p_queue;
  IF v_table IS NOT NULL THEN
    BEGIN
      EXECUTE format('LOCK TABLE holdline.%I IN ACCESS EXCLUSIVE MODE', v_table);
      EXECUTE format('SELECT count(*) FROM holdline.%I', v_table) INTO v_purged;
      EXECUTE format('TRUNCATE holdline.%I', v_table);
      RETURN v_purged;
    EXCEPTION WHEN lock_not_available THEN
      NULL;
    END;
  END IF;
  DELETE FROM holdline.messages m WHERE m.queue = p_queue;
  GET DIAGNOSTICS v_purged = ROW_COUNT;
  RETURN v_purged;
END
$$;

-- The messages of a queue being deleted: its partition DROPped when the lock on
-- holdline.messages comes within lock_timeout (a DROP of a partition locks the parent
-- exclusively), else its rows deleted and the empty partition kept for a queue of the same
-- name. Kept too while another queue names it as dead-letter queue: a nack there must find it.
CREATE FUNCTION holdline.delete_queue_messages(p_queue text) RETURNS void
    LANGUAGE plpgsql
    SET lock_timeout TO '100ms'
    AS $$
DECLARE
  v_table text;
BEGIN
  SELECT p.table_name INTO v_table FROM holdline.message_partitions p WHERE p.queue = p_queue;
  IF v_table IS NOT NULL
     AND NOT EXISTS (SELECT FROM holdline.queues q WHERE q.dead_letter_queue = p_queue) THEN
    BEGIN
      EXECUTE format('DROP TABLE holdline.%I', v_table);
      DELETE FROM holdline.message_partitions p WHERE p.queue = p_queue;
      RETURN;
    EXCEPTION WHEN lock_not_available THEN
      NULL;
    END;
  END IF;
  DELETE FROM holdline.messages m WHERE m.queue = p_queue;
END
$$;

-- 0011's replay batch; its redrive moves between partitions as holdline.redrive does.
CREATE OR REPLACE FUNCTION holdline.replay_batch(p_job_id bigint, p_limit integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS SETOF holdline.replay_jobs
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_job holdline.replay_jobs;
  v_limit integer;
  v_max_bytes integer;
  v_rows holdline.message_archive[];
  v_n integer;
  v_new_ids bigint[];
  v_too_large bigint;
  v_last_id bigint;
  v_done boolean;
BEGIN
  IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'limit must be between 1 and 10000, got %', p_limit USING ERRCODE = 'HL400';
  END IF;
  SELECT * INTO v_job FROM holdline.replay_jobs j WHERE j.id = p_job_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF v_job.state <> 'running' THEN
    RETURN NEXT v_job;
    RETURN;
  END IF;
  v_limit := p_limit;
  IF v_job.rate_per_second IS NOT NULL THEN
    v_limit := least(v_limit, greatest(1, ceil(v_job.rate_per_second / 10))::integer);
  END IF;
  IF v_job.max_messages IS NOT NULL THEN
    v_limit := least(v_limit, v_job.max_messages - v_job.replayed);
  END IF;

  -- The target's queue lock, shared, as every send takes it (0002, send_batch).
  PERFORM pg_advisory_xact_lock_shared(1212961868, hashtext(v_job.into_queue));
  SELECT q.max_payload_bytes INTO v_max_bytes FROM holdline.queues q WHERE q.name = v_job.into_queue;
  IF NOT FOUND THEN
    RETURN QUERY
    UPDATE holdline.replay_jobs j
    SET state = 'failed', last_error = format('queue "%s" no longer exists', v_job.into_queue),
        updated_at = v_now, finished_at = v_now
    WHERE j.id = p_job_id RETURNING j.*;
    RETURN;
  END IF;

  IF v_job.kind = 'redrive' THEN
    -- holdline.redrive's move, one batch at a time, after the cursor, filtered. Dead letters
    -- being consumed (leased) or locked by another transaction are passed over.
    WITH dead AS (
      SELECT m.queue, m.id FROM holdline.messages m
      WHERE m.origin_queue = v_job.queue AND m.lease_token IS NULL
        AND m.id > v_job.last_id AND m.id <= v_job.to_id
        AND (v_job.payload_filter IS NULL OR m.payload @> v_job.payload_filter)
        AND (v_job.headers_filter IS NULL OR m.headers @> v_job.headers_filter)
      ORDER BY m.id
      LIMIT v_limit
      FOR UPDATE SKIP LOCKED
    ), taken AS (
      -- A move between partitions (0040): deleted from the dead-letter queue's, inserted into
      -- the origin's with its id.
      DELETE FROM holdline.messages m USING dead
      WHERE m.queue = dead.queue AND m.id = dead.id
      RETURNING m.*
    ), moved AS (
      INSERT INTO holdline.messages AS n (id, queue, payload, headers, priority, run_at,
                                          attempts, dedup_key, group_key, last_error,
                                          created_at)
      OVERRIDING SYSTEM VALUE
      SELECT t.id, v_job.queue, t.payload, t.headers, t.priority, v_now, 0, t.dedup_key,
             t.group_key, t.last_error, t.created_at
      FROM taken t ORDER BY t.id
      RETURNING n.id
    )
    SELECT count(*), max(moved.id) INTO v_n, v_last_id FROM moved;
    IF v_n > 0 THEN
      PERFORM holdline.wake(v_job.queue);
    END IF;
  ELSE
    -- LOUD: without this lock a batch can skip messages. archive_create_partitions moves rows
    -- out of the default partition into a partition it attaches in the same transaction; a
    -- statement planned before that commit but reading after it sees neither the rows (gone
    -- from the default partition) nor their new partition, and a short batch ends the job.
    -- Taken shared here and exclusively there, it makes this batch plan and read after the
    -- move or before it. Browsing does not take it: a page read during the move may miss
    -- rows that are back at the next read.
    PERFORM pg_advisory_xact_lock_shared(1212961868, 2);
    SELECT array_agg(b.m ORDER BY (b.m).id) INTO v_rows
    FROM (SELECT m FROM holdline.archive_matches(v_job.queue, v_job.last_id, v_job.to_id,
                                                 v_job.from_at, v_job.to_at, v_job.payload_filter,
                                                 v_job.headers_filter, v_now) AS m
          LIMIT v_limit) b;
    v_n := coalesce(cardinality(v_rows), 0);

    IF v_n > 0 THEN
      SELECT min(r.id) INTO v_too_large FROM unnest(v_rows) r
      WHERE octet_length(r.payload::text) > v_max_bytes;
      IF v_too_large IS NOT NULL THEN
        RETURN QUERY
        UPDATE holdline.replay_jobs j
        SET state = 'failed',
            last_error = format('archived message %s has a payload over the %s bytes queue "%s" accepts',
                                v_too_large, v_max_bytes, v_job.into_queue),
            updated_at = v_now, finished_at = v_now
        WHERE j.id = p_job_id RETURNING j.*;
        RETURN;
      END IF;
      -- Ids drawn in the original order, as send_batch draws them: the copies keep send order.
      SELECT array_agg(nextval('holdline.messages_id_seq') ORDER BY g) INTO v_new_ids
      FROM generate_series(1, v_n) AS g;
      INSERT INTO holdline.messages (id, queue, payload, headers, priority, group_key, run_at)
      OVERRIDING SYSTEM VALUE
      SELECT v_new_ids[r.ord], v_job.into_queue, r.payload,
             coalesce(r.headers, '{}'::jsonb) || jsonb_build_object('holdline-original-id', r.id::text),
             r.priority, r.group_key, v_now
      FROM unnest(v_rows) WITH ORDINALITY AS r(id, queue, payload, headers, priority, attempts,
                                               group_key, sent_at, acked_at, ord)
      ORDER BY r.ord;
      PERFORM holdline.wake(v_job.into_queue);
      v_last_id := (v_rows[v_n]).id;
    END IF;
  END IF;

  -- Done when a batch comes up short, or a redrive has moved its maximum.
  v_done := v_n < v_limit OR coalesce(v_job.replayed + v_n >= v_job.max_messages, false);
  RETURN QUERY
  UPDATE holdline.replay_jobs j
  SET last_id = CASE WHEN v_done THEN j.to_id ELSE v_last_id END,
      replayed = j.replayed + v_n,
      state = CASE WHEN v_done THEN 'done' ELSE 'running' END,
      finished_at = CASE WHEN v_done THEN v_now END,
      next_batch_at = CASE WHEN j.rate_per_second IS NULL THEN v_now
                           ELSE v_now + make_interval(secs => v_n / j.rate_per_second) END,
      updated_at = v_now
  WHERE j.id = p_job_id
  RETURNING j.*;
END
$$;

-- Message p_id, found in whichever partition holds it. A function, not a join: the planner
-- takes it for the one row it is (not a row per partition), so the statements built on it
-- stay cheap to plan and under jit_above_cost. waiting_reason likewise is no longer
-- inlined, and runs with JIT off.
CREATE FUNCTION holdline.message_get(p_id bigint) RETURNS SETOF holdline.messages
    LANGUAGE plpgsql STABLE ROWS 1
    SET jit TO 'off'
    AS $$
BEGIN
  RETURN QUERY SELECT * FROM holdline.messages m WHERE m.id = p_id;
END
$$;
ALTER FUNCTION holdline.waiting_reason(bigint, timestamptz) ROWS 1 SET jit TO 'off';
ALTER FUNCTION holdline.rate_limit_tokens(text, timestamptz) ROWS 1;

CREATE VIEW holdline.queue_stats AS
 SELECT q.name AS queue,
    count(m.id) FILTER (WHERE ((m.lease_token IS NULL) AND (m.run_at <= now()))) AS ready,
    count(m.id) FILTER (WHERE ((m.lease_token IS NULL) AND (m.run_at > now()))) AS delayed,
    count(m.id) FILTER (WHERE (m.lease_token IS NOT NULL)) AS leased,
    count(m.id) AS total,
    (EXTRACT(epoch FROM (now() - min(m.run_at) FILTER (WHERE ((m.lease_token IS NULL) AND (m.run_at <= now()))))))::double precision AS oldest_ready_age
   FROM (holdline.queues q
     LEFT JOIN holdline.messages m ON ((m.queue = q.name)))
  GROUP BY q.name;

CREATE VIEW holdline.queue_waiting AS
 WITH per_queue AS (
         SELECT q.name,
            q.paused,
            q.max_in_flight,
            q.group_max_in_flight,
            ( SELECT count(*) AS count
                   FROM holdline.messages l
                  WHERE ((l.queue = q.name) AND (l.lease_token IS NOT NULL))) AS leased,
            COALESCE(( SELECT (r.tokens < (1)::double precision)
                   FROM holdline.rate_limit_tokens(q.name, now()) r(tokens, next_token_at)), false) AS rate_limited
           FROM holdline.queues q
        ), classified AS (
         SELECT m.queue,
                CASE
                    WHEN ((m.run_at > now()) AND (m.attempts > 0)) THEN 'BACKING_OFF'::text
                    WHEN (m.run_at > now()) THEN 'DELAYED'::text
                    WHEN p_1.paused THEN 'QUEUE_PAUSED'::text
                    WHEN ((m.group_key IS NOT NULL) AND (( SELECT count(*) AS count
                       FROM ( SELECT
                               FROM holdline.messages e
                              WHERE ((e.queue = m.queue) AND (e.group_key = m.group_key) AND (e.id < m.id))
                             LIMIT COALESCE(p_1.group_max_in_flight, 1)) ahead) >= COALESCE(p_1.group_max_in_flight, 1))) THEN 'GROUP_HEAD_IN_FLIGHT'::text
                    WHEN ((p_1.max_in_flight IS NOT NULL) AND (p_1.leased >= p_1.max_in_flight)) THEN 'CONCURRENCY_CAP'::text
                    WHEN p_1.rate_limited THEN 'RATE_LIMITED'::text
                    ELSE 'READY'::text
                END AS reason
           FROM (per_queue p_1
             JOIN holdline.messages m ON (((m.queue = p_1.name) AND (m.lease_token IS NULL))))
        )
 SELECT p.name AS queue,
    count(c.reason) FILTER (WHERE (c.reason = 'READY'::text)) AS ready,
    count(c.reason) FILTER (WHERE (c.reason = 'DELAYED'::text)) AS delayed,
    count(c.reason) FILTER (WHERE (c.reason = 'BACKING_OFF'::text)) AS backing_off,
    count(c.reason) FILTER (WHERE (c.reason = 'GROUP_HEAD_IN_FLIGHT'::text)) AS group_head_in_flight,
    count(c.reason) FILTER (WHERE (c.reason = 'QUEUE_PAUSED'::text)) AS queue_paused,
    count(c.reason) FILTER (WHERE (c.reason = 'CONCURRENCY_CAP'::text)) AS concurrency_cap,
    count(c.reason) FILTER (WHERE (c.reason = 'RATE_LIMITED'::text)) AS rate_limited,
    p.leased,
    p.max_in_flight
   FROM (per_queue p
     LEFT JOIN classified c ON ((c.queue = p.name)))
  GROUP BY p.name, p.leased, p.max_in_flight;

CREATE VIEW holdline.dead_letters AS
 SELECT m.id,
    m.queue,
    m.origin_queue,
    m.attempts,
    m.last_error,
    m.payload,
    m.headers,
    m.dead_lettered_at,
    m.created_at
   FROM holdline.messages m
  WHERE (m.origin_queue IS NOT NULL);
