-- 0011: replay as a durable job. holdline.start_replay records a job that re-enqueues a
-- queue's archived messages (holdline.message_archive, 0010) into a queue, in their original
-- send order, with new ids and the original id in header "holdline-original-id";
-- holdline.start_redrive records the same kind of job moving a queue's dead letters back,
-- with a filter, a maximum and a rate (holdline.redrive, 0002, stays as it is).
-- holdline.replay_batch runs the next batch of one job (the leader's replay runner calls it,
-- and so may anyone with SQL). Each batch writes its messages and moves the job's cursor in
-- one transaction, so a job killed at any point resumes where its last commit left it: no
-- message is replayed twice or skipped by one job.
-- Locks: none beyond creating objects.

CREATE TABLE holdline.replay_jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- replay: copies of archived messages; redrive: dead letters moved back to their origin
  kind text NOT NULL DEFAULT 'replay' CHECK (kind IN ('replay', 'redrive')),
  -- the queue whose archive is replayed, or whose dead letters are redriven
  queue text NOT NULL,
  into_queue text NOT NULL,
  -- sent_at bounds of the messages replayed: from inclusive, to exclusive; NULL: open
  from_at timestamptz,
  to_at timestamptz,
  -- JSON containment (@>) on payload and on headers; NULL: any
  payload_filter jsonb,
  headers_filter jsonb,
  rate_per_second double precision CHECK (rate_per_second > 0),
  -- redrive: most dead letters to move; NULL: all
  max_messages bigint CHECK (max_messages > 0),
  dry_run boolean NOT NULL DEFAULT false,
  state text NOT NULL CHECK (state IN ('running', 'done', 'cancelled', 'failed')),
  -- messages matching when the job started, and copies enqueued so far
  matched bigint NOT NULL DEFAULT 0,
  replayed bigint NOT NULL DEFAULT 0,
  -- The cursor: every message with an id up to here has been handled. A replay takes
  -- archived ids up to to_id, the newest archived when it started, so that copies it makes
  -- (new, higher ids) that are acked and archived meanwhile are never replayed again; a
  -- redrive takes dead letters up to the newest when it started, and the cursor keeps a
  -- message that dies again after its redrive from being moved twice by one job.
  last_id bigint NOT NULL DEFAULT 0,
  to_id bigint NOT NULL DEFAULT 0,
  -- with rate_per_second: not before this time
  next_batch_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

-- The runner's question: which running jobs are due?
CREATE INDEX replay_jobs_due_idx ON holdline.replay_jobs (next_batch_at) WHERE state = 'running';
-- replayJobs(queue): a queue's jobs, newest first.
CREATE INDEX replay_jobs_queue_idx ON holdline.replay_jobs (queue, id);

-- The archived messages of p_queue that a replay takes, in send order (id): ids in
-- (p_after_id, p_to_id] (p_to_id NULL: no bound), still within the queue's archive_seconds as
-- of p_now, sent in [p_from, p_to) (NULL: open), and containing the filters (@>). Inlined
-- into its callers' statements (a plain SQL function), so their LIMIT stops the index scan.
-- Partitions acked before p_from are pruned: a message is acked after it was sent.
CREATE FUNCTION holdline.archive_matches(
  p_queue text, p_after_id bigint, p_to_id bigint, p_from timestamptz, p_to timestamptz,
  p_payload_filter jsonb, p_headers_filter jsonb, p_now timestamptz
) RETURNS SETOF holdline.message_archive
LANGUAGE sql STABLE AS $$
  SELECT a.*
  FROM holdline.message_archive a
  JOIN holdline.queues q ON q.name = a.queue
  WHERE a.queue = p_queue
    AND a.id > coalesce(p_after_id, 0)
    AND (p_to_id IS NULL OR a.id <= p_to_id)
    AND a.acked_at > p_now - make_interval(secs => q.archive_seconds)
    -- not what a deleted queue of the same name left behind
    AND a.acked_at >= q.created_at
    AND (p_from IS NULL OR (a.sent_at >= p_from AND a.acked_at >= p_from))
    AND (p_to IS NULL OR a.sent_at < p_to)
    AND (p_payload_filter IS NULL OR a.payload @> p_payload_filter)
    AND (p_headers_filter IS NULL OR a.headers @> p_headers_filter)
  ORDER BY a.id
$$;

-- Starts a replay of p_queue's archive into p_into (default: p_queue itself) and returns the
-- job. p_from/p_to bound the send time (from inclusive, to exclusive); the filters are JSON
-- objects matched by containment (@>); p_rate_per_second caps the copies per second (NULL:
-- as fast as batches go). A dry run only counts: its job is done at once, `matched` saying
-- how many messages a replay would enqueue now. Fails with HL404 for a missing queue, HL400
-- for bad input; nothing is recorded then.
CREATE FUNCTION holdline.start_replay(
  p_queue text,
  p_into text DEFAULT NULL,
  p_from timestamptz DEFAULT NULL,
  p_to timestamptz DEFAULT NULL,
  p_payload_filter jsonb DEFAULT NULL,
  p_headers_filter jsonb DEFAULT NULL,
  p_rate_per_second double precision DEFAULT NULL,
  p_dry_run boolean DEFAULT false,
  p_now timestamptz DEFAULT NULL
) RETURNS SETOF holdline.replay_jobs
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_into text := coalesce(p_into, p_queue);
  v_to_id bigint;
  v_matched bigint;
BEGIN
  IF p_from > p_to THEN
    RAISE EXCEPTION 'from (%) must not be after to (%)', p_from, p_to USING ERRCODE = 'HL400';
  END IF;
  IF jsonb_typeof(p_payload_filter) <> 'object' OR jsonb_typeof(p_headers_filter) <> 'object' THEN
    RAISE EXCEPTION 'filters must be JSON objects' USING ERRCODE = 'HL400';
  END IF;
  IF p_rate_per_second <= 0 OR p_rate_per_second = 'NaN' OR p_rate_per_second = 'Infinity' THEN
    RAISE EXCEPTION 'rate_per_second must be a positive number, got %', p_rate_per_second
      USING ERRCODE = 'HL400';
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.name = p_queue) THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue USING ERRCODE = 'HL404';
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.name = v_into) THEN
    RAISE EXCEPTION 'queue "%" does not exist', v_into USING ERRCODE = 'HL404';
  END IF;
  -- Shared with every replay batch, exclusive for archive_create_partitions: see replay_batch.
  PERFORM pg_advisory_xact_lock_shared(1212961868, 2);
  SELECT coalesce(max(a.id), 0) INTO v_to_id FROM holdline.message_archive a WHERE a.queue = p_queue;
  SELECT count(*) INTO v_matched
  FROM holdline.archive_matches(p_queue, 0, v_to_id, p_from, p_to, p_payload_filter,
                                p_headers_filter, v_now);
  RETURN QUERY
  INSERT INTO holdline.replay_jobs (queue, into_queue, from_at, to_at, payload_filter,
                                    headers_filter, rate_per_second, dry_run, state, matched,
                                    to_id, next_batch_at, created_at, updated_at, finished_at)
  VALUES (p_queue, v_into, p_from, p_to, p_payload_filter, p_headers_filter, p_rate_per_second,
          coalesce(p_dry_run, false),
          CASE WHEN p_dry_run IS TRUE OR v_matched = 0 THEN 'done' ELSE 'running' END,
          v_matched, v_to_id, v_now, v_now, v_now,
          CASE WHEN p_dry_run IS TRUE OR v_matched = 0 THEN v_now END)
  RETURNING *;
END
$$;

-- Runs the next batch of running job p_job_id as of p_now (default now()): up to p_limit
-- (1 to 10,000) archived messages after its cursor, in id order, are enqueued into its target
-- queue (ready at once, priority and group key kept, attempts 0, no dedup key, headers plus
-- "holdline-original-id"), or for a redrive that many dead letters move back to their origin
-- queue, and the cursor and counts move, all in this transaction. With a
-- rate, a batch is at most a tenth of a second's worth, and the next is due when the rate
-- allows. The job is done when a batch finds fewer than it asked for; failed (nothing of the
-- batch enqueued) when its target queue is gone or a message is over the target's payload
-- limit. Returns the job as it is afterwards; a job that is not running is returned as is.
-- Locks the job's row: two runners of one job take turns, and cancel waits for a batch.
CREATE FUNCTION holdline.replay_batch(p_job_id bigint, p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS SETOF holdline.replay_jobs
LANGUAGE plpgsql AS $$
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
      SELECT m.id FROM holdline.messages m
      WHERE m.origin_queue = v_job.queue AND m.lease_token IS NULL
        AND m.id > v_job.last_id AND m.id <= v_job.to_id
        AND (v_job.payload_filter IS NULL OR m.payload @> v_job.payload_filter)
        AND (v_job.headers_filter IS NULL OR m.headers @> v_job.headers_filter)
      ORDER BY m.id
      LIMIT v_limit
      FOR UPDATE SKIP LOCKED
    ), moved AS (
      UPDATE holdline.messages m
      SET queue = v_job.queue, origin_queue = NULL, dead_lettered_at = NULL, attempts = 0,
          run_at = v_now
      FROM dead WHERE m.id = dead.id
      RETURNING m.id
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

-- Starts a redrive job: up to p_max (NULL: all) dead letters whose origin is p_queue, whose
-- payload and headers contain the filters, move back to it in id order, ready at once with
-- attempts reset, p_rate_per_second at most (NULL: no cap). Leased dead letters are passed
-- over. A dry run only counts. HL404 for a missing queue, HL400 for bad input.
CREATE FUNCTION holdline.start_redrive(
  p_queue text,
  p_payload_filter jsonb DEFAULT NULL,
  p_headers_filter jsonb DEFAULT NULL,
  p_max bigint DEFAULT NULL,
  p_rate_per_second double precision DEFAULT NULL,
  p_dry_run boolean DEFAULT false,
  p_now timestamptz DEFAULT NULL
) RETURNS SETOF holdline.replay_jobs
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_to_id bigint;
  v_matched bigint;
BEGIN
  IF jsonb_typeof(p_payload_filter) <> 'object' OR jsonb_typeof(p_headers_filter) <> 'object' THEN
    RAISE EXCEPTION 'filters must be JSON objects' USING ERRCODE = 'HL400';
  END IF;
  IF p_rate_per_second <= 0 OR p_rate_per_second = 'NaN' OR p_rate_per_second = 'Infinity' THEN
    RAISE EXCEPTION 'rate_per_second must be a positive number, got %', p_rate_per_second
      USING ERRCODE = 'HL400';
  END IF;
  IF p_max < 1 THEN
    RAISE EXCEPTION 'max must be at least 1 (or NULL for all), got %', p_max USING ERRCODE = 'HL400';
  END IF;
  IF NOT EXISTS (SELECT FROM holdline.queues q WHERE q.name = p_queue) THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue USING ERRCODE = 'HL404';
  END IF;
  -- messages_origin_idx (0001): the queue's dead letters by id.
  SELECT coalesce(max(m.id), 0), least(count(*), p_max) INTO v_to_id, v_matched
  FROM holdline.messages m
  WHERE m.origin_queue = p_queue AND m.lease_token IS NULL
    AND (p_payload_filter IS NULL OR m.payload @> p_payload_filter)
    AND (p_headers_filter IS NULL OR m.headers @> p_headers_filter);
  RETURN QUERY
  INSERT INTO holdline.replay_jobs (kind, queue, into_queue, payload_filter, headers_filter,
                                    rate_per_second, max_messages, dry_run, state, matched,
                                    to_id, next_batch_at, created_at, updated_at, finished_at)
  VALUES ('redrive', p_queue, p_queue, p_payload_filter, p_headers_filter, p_rate_per_second,
          p_max, coalesce(p_dry_run, false),
          CASE WHEN p_dry_run IS TRUE OR v_matched = 0 THEN 'done' ELSE 'running' END,
          v_matched, v_to_id, v_now, v_now, v_now,
          CASE WHEN p_dry_run IS TRUE OR v_matched = 0 THEN v_now END)
  RETURNING *;
END
$$;

-- Cancels a running job: no batch starts after this commits (a batch in flight finishes
-- first: this waits for its row lock). Copies already enqueued stay. Returns the job as it is
-- afterwards, or no row when there is no such job.
CREATE FUNCTION holdline.cancel_replay(p_job_id bigint, p_now timestamptz DEFAULT NULL)
RETURNS SETOF holdline.replay_jobs
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
  UPDATE holdline.replay_jobs j
  SET state = 'cancelled', updated_at = coalesce(p_now, now()), finished_at = coalesce(p_now, now())
  WHERE j.id = p_job_id AND j.state = 'running'
  RETURNING j.*;
  IF NOT FOUND THEN
    RETURN QUERY SELECT * FROM holdline.replay_jobs j WHERE j.id = p_job_id;
  END IF;
END
$$;
