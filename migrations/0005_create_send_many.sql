-- 0005: a batch send that returns ids instead of rows. Adds holdline.send_many.
-- Locks: none beyond creating a function.

-- Enqueues a batch into one queue, atomically, inside the caller's transaction, and returns
-- the ids in input order. p_messages is a JSON array with one object per message:
--   {"payload": <any JSON but null>, "run_at": "<timestamptz>", "priority": <int>,
--    "group_key": "<text>", "headers": {<object>}}
-- where every key but payload may be missing or null. Same rules and errors as send_batch,
-- but no dedup keys: a message with one is refused (HL400), as send_batch handles those.
--
-- Why beside send_batch (bench/batch-sends.ts, batches of 500): send_batch reads every row
-- back (its result is the rows, for the dedup case where a message found is not the one
-- sent), and runs ON CONFLICT's speculative insertion for every row. A batch without dedup
-- keys needs neither: the caller has the messages and needs only their ids, so this inserts
-- plainly and returns one bigint[]. One JSON document instead of one array per column is
-- also cheaper for a client to build than seven escaped array literals.
CREATE FUNCTION holdline.send_many(p_queue text, p_messages jsonb) RETURNS bigint[]
LANGUAGE plpgsql
-- As send_batch: without it every statement here is re-planned on every call.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_n integer;
  v_has_dedup boolean;
  v_invalid boolean;
  v_ids bigint[];
BEGIN
  IF jsonb_typeof(p_messages) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'messages must be a JSON array of objects' USING ERRCODE = 'HL400';
  END IF;
  v_n := jsonb_array_length(p_messages);

  -- The queue lock, shared, as send_batch takes it (see there): before the lookup below.
  PERFORM pg_advisory_xact_lock_shared(1212961868, hashtext(p_queue));

  -- The queue and every input check in one pass over the batch: send_batch's rules.
  SELECT coalesce(bool_or(m.dedup_key IS NOT NULL), false),
         coalesce(bool_or(m.payload IS NULL OR jsonb_typeof(m.payload) = 'null'
                          OR octet_length(m.payload::text) > q.max_payload_bytes
                          OR length(m.group_key) NOT BETWEEN 1 AND 256
                          OR m.run_at > now() + interval '1 year'
                          OR jsonb_typeof(m.headers) <> 'object'), false)
    INTO v_has_dedup, v_invalid
  FROM holdline.queues q
  LEFT JOIN ROWS FROM (jsonb_to_recordset(p_messages)
                        AS (payload jsonb, run_at timestamptz, group_key text, dedup_key text,
                            headers jsonb)) WITH ORDINALITY
         AS m(payload, run_at, group_key, dedup_key, headers, ord) ON true
  WHERE q.name = p_queue
  GROUP BY q.max_payload_bytes;
  IF v_has_dedup THEN
    RAISE EXCEPTION 'send_many does not deduplicate; send messages with a dedup_key through send_batch'
      USING ERRCODE = 'HL400';
  END IF;
  IF NOT FOUND OR v_invalid THEN
    -- No such queue, or a message breaks a rule: send_batch raises the error that fits, with
    -- the message's position (or sends, if the queue appeared since the lookup above).
    SELECT array_agg(s.id ORDER BY s.ordinality) INTO v_ids
    FROM (SELECT array_agg(m.payload ORDER BY m.ord) AS payloads,
                 array_agg(m.run_at ORDER BY m.ord) AS run_ats,
                 array_agg(m.priority ORDER BY m.ord) AS priorities,
                 array_agg(m.group_key ORDER BY m.ord) AS group_keys,
                 array_agg(m.headers ORDER BY m.ord) AS headers
          FROM ROWS FROM (jsonb_to_recordset(p_messages)
                          AS (payload jsonb, run_at timestamptz, priority integer,
                              group_key text, headers jsonb)) WITH ORDINALITY
               AS m(payload, run_at, priority, group_key, headers, ord)) AS a
    CROSS JOIN LATERAL holdline.send_batch(p_queue, coalesce(a.payloads, ARRAY[]::jsonb[]),
                                           a.run_ats, a.priorities, NULL, a.group_keys,
                                           a.headers) WITH ORDINALITY AS s
    GROUP BY ();
    RETURN coalesce(v_ids, ARRAY[]::bigint[]);
  END IF;
  IF v_n = 0 THEN
    RETURN ARRAY[]::bigint[];
  END IF;

  -- Ids drawn in input order, as in send_batch: a batch keeps its order.
  SELECT array_agg(nextval('holdline.messages_id_seq') ORDER BY g)
    INTO v_ids FROM generate_series(1, v_n) AS g;

  INSERT INTO holdline.messages (id, queue, payload, run_at, priority, group_key, headers)
  OVERRIDING SYSTEM VALUE
  SELECT v_ids[m.ord], p_queue, m.payload, coalesce(m.run_at, now()), coalesce(m.priority, 0),
         m.group_key, m.headers
  FROM ROWS FROM (jsonb_to_recordset(p_messages)
                  AS (payload jsonb, run_at timestamptz, priority integer, group_key text,
                      headers jsonb)) WITH ORDINALITY
       AS m(payload, run_at, priority, group_key, headers, ord)
  ORDER BY m.ord;

  -- holdline.wake, inlined as in send_at.
  IF EXISTS (SELECT FROM holdline.waiting_consumers w WHERE w.queue = p_queue) THEN
    PERFORM pg_notify('holdline_ready', p_queue);
  END IF;
  RETURN v_ids;
END
$$;
