-- 0009: a single send over its queue's payload limit says "the payload is N bytes", not
-- "message 1 has a payload of N bytes" (send_batch's wording, which names a position in a
-- batch the caller never sent). Adds holdline.send_one and makes send_one_of_batch, through
-- which send_at hands every case but the common one, call it.
-- Locks: none beyond creating and replacing functions.

-- One message through send_batch (dedup, and the error that fits), returning the row sent or
-- the live message found by its dedup key. A payload over the queue's limit is refused here
-- first, in the words of a single send; everything else is send_batch's. The limit is read
-- before send_batch takes the queue lock: a limit changed meanwhile only decides which of
-- the two refuses, as both check the same rule.
CREATE FUNCTION holdline.send_one(
  p_queue text,
  p_payload jsonb,
  p_run_at timestamptz DEFAULT NULL,
  p_priority integer DEFAULT NULL,
  p_dedup_key text DEFAULT NULL,
  p_group_key text DEFAULT NULL,
  p_headers jsonb DEFAULT NULL
) RETURNS SETOF holdline.messages
LANGUAGE plpgsql AS $$
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

-- Same signature and result as in 0004; now through send_one.
CREATE OR REPLACE FUNCTION holdline.send_one_of_batch(
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
  FROM holdline.send_one(p_queue, p_payload, p_run_at, p_priority, p_dedup_key, p_group_key,
                         p_headers) AS m
$$;
