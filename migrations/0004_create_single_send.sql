-- 0004: a single send that costs about what a plain INSERT costs. Adds holdline.send_at, makes
-- the contract's holdline.send call it (same signature, same result), and moves the CHECKs on
-- holdline.messages into the functions that write it.
-- Locks: ACCESS EXCLUSIVE on holdline.messages for the instant of dropping its CHECKs (no
-- scan, no rewrite); otherwise only the functions it replaces and creates.

-- PostgreSQL rebuilds a table's CHECK expressions from their stored text on every INSERT or
-- UPDATE statement (per executor start, not once per session), which made these four, all
-- small, a fifth of the CPU of a single send (pgbench, 8 clients: 5,400 sends/s with them,
-- 6,500 without). Their rules stay, enforced by every function that writes messages:
-- send_batch and send_at refuse headers that are not an object and dedup or group keys
-- outside 1 to 256 characters; receive sets lease_token and lease_expires_at together and
-- ack, nack, extend and the reaper clear or keep them together. Messages are written only
-- through those functions.
ALTER TABLE holdline.messages
  DROP CONSTRAINT messages_check,
  DROP CONSTRAINT messages_dedup_key_check,
  DROP CONSTRAINT messages_group_key_check,
  DROP CONSTRAINT messages_headers_check;

-- Enqueues one message, inside the caller's transaction, and returns its id. Same rules and
-- errors as send_batch, which it hands every case except the common one: no dedup key,
-- valid input, an existing queue.
--
-- Why not send_batch with one-element arrays: measured with pgbench (8 clients, PostgreSQL
-- 15, 2 cores), that ran at 0.4x a plain INSERT, this at about 0.8x. The difference is the
-- work around the row, not the row: seven array parameters unnested, the id drawn ahead
-- for batch order, ON CONFLICT's speculative insertion, and the inserted row read back
-- through a join into a result set. Here the INSERT takes plain parameters and the result
-- is one bigint, which the caller's statement can return beside now() (the row's
-- created_at, the same transaction timestamp) instead of reading the row back.
CREATE FUNCTION holdline.send_at(
  p_queue text,
  p_payload jsonb,
  p_run_at timestamptz DEFAULT NULL,
  p_priority integer DEFAULT NULL,
  p_dedup_key text DEFAULT NULL,
  p_group_key text DEFAULT NULL,
  p_headers jsonb DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_id bigint;
BEGIN
  -- Each operand is NULL or false for a valid send without a dedup key. Everything else goes
  -- to send_batch, which deduplicates, or raises the error that fits.
  IF p_dedup_key IS NOT NULL
     OR p_payload IS NULL OR jsonb_typeof(p_payload) = 'null'
     OR length(p_group_key) NOT BETWEEN 1 AND 256
     OR p_run_at > now() + interval '1 year'
     OR jsonb_typeof(p_headers) <> 'object' THEN
    RETURN holdline.send_one_of_batch(p_queue, p_payload, p_run_at, p_priority, p_dedup_key,
                                      p_group_key, p_headers);
  END IF;

  -- The queue lock, shared, as send_batch takes it (see there): before the lookup below.
  PERFORM pg_advisory_xact_lock_shared(1212961868, hashtext(p_queue));

  INSERT INTO holdline.messages (queue, payload, run_at, priority, group_key, headers)
  SELECT p_queue, p_payload, coalesce(p_run_at, now()), coalesce(p_priority, 0), p_group_key,
         p_headers
  FROM holdline.queues q
  WHERE q.name = p_queue AND octet_length(p_payload::text) <= q.max_payload_bytes
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    -- No such queue, or the payload is over its limit: send_batch raises the matching error
    -- (or sends, if the queue appeared or its limit grew since the lookup above).
    RETURN holdline.send_one_of_batch(p_queue, p_payload, p_run_at, p_priority, NULL,
                                      p_group_key, p_headers);
  END IF;

  -- holdline.wake, inlined: a second plpgsql call cost about a tenth of a send. The queue
  -- lock is held already, and this statement's snapshot is taken after it (see wake).
  IF EXISTS (SELECT FROM holdline.waiting_consumers w WHERE w.queue = p_queue) THEN
    PERFORM pg_notify('holdline_ready', p_queue);
  END IF;
  RETURN v_id;
END
$$;

-- send_batch for one message, returning the id of the message sent or found by dedup key.
CREATE FUNCTION holdline.send_one_of_batch(
  p_queue text,
  p_payload jsonb,
  p_run_at timestamptz,
  p_priority integer,
  p_dedup_key text,
  p_group_key text,
  p_headers jsonb
) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
  SELECT m.id
  FROM holdline.send_batch(p_queue, ARRAY[p_payload], ARRAY[p_run_at], ARRAY[p_priority],
                           ARRAY[p_dedup_key], ARRAY[p_group_key], ARRAY[p_headers]) AS m
$$;

-- The SQL contract's single send (unchanged signature). delay_seconds: 0 to 31,536,000.
CREATE OR REPLACE FUNCTION holdline.send(
  queue text,
  payload jsonb,
  delay_seconds integer DEFAULT 0,
  priority integer DEFAULT 0,
  dedup_key text DEFAULT NULL,
  group_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
  IF delay_seconds IS NULL OR delay_seconds NOT BETWEEN 0 AND 31536000 THEN
    RAISE EXCEPTION 'delay_seconds must be between 0 and 31536000, got %', delay_seconds
      USING ERRCODE = 'HL400';
  END IF;
  RETURN holdline.send_at(queue, payload, now() + make_interval(secs => delay_seconds),
                          priority, dedup_key, group_key, headers);
END
$$;
