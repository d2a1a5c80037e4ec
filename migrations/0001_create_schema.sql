-- 0001: creates schema holdline: queues, messages, topic bindings, waiting consumers, the
-- dequeue-rate buckets, and the indexes the hot statements rely on.
-- Locks: only objects it creates (a first install); nothing existing is touched.

CREATE SCHEMA IF NOT EXISTS holdline;

-- One row per queue. Config columns carry their defaults here so that a queue created from
-- plain SQL behaves exactly like one created through the API.
CREATE TABLE holdline.queues (
  name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
  paused boolean NOT NULL DEFAULT false,
  visibility_timeout_seconds integer NOT NULL DEFAULT 30
    CHECK (visibility_timeout_seconds BETWEEN 1 AND 43200),
  max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 1000),
  -- NULL: no dead-letter queue; exhausted messages keep being retried with backoff (as an SQS
  -- queue without a redrive policy). The API fills in '<name>.dlq' unless told otherwise.
  dead_letter_queue text CHECK (dead_letter_queue ~ '^[A-Za-z0-9_.-]{1,128}$' AND dead_letter_queue <> name),
  backoff_initial_seconds double precision NOT NULL DEFAULT 1
    CHECK (backoff_initial_seconds >= 0 AND backoff_initial_seconds <= 86400),
  backoff_max_seconds double precision NOT NULL DEFAULT 300
    CHECK (backoff_max_seconds >= backoff_initial_seconds AND backoff_max_seconds <= 86400 * 7),
  retention_seconds integer NOT NULL DEFAULT 1209600 CHECK (retention_seconds BETWEEN 60 AND 31536000),
  max_payload_bytes integer NOT NULL DEFAULT 1048576 CHECK (max_payload_bytes BETWEEN 1 AND 268435456),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Rows here live seconds: inserted by send, updated once per lease, deleted by ack. So:
-- * fillfactor 80 leaves room on each page for the new row version a lease or nack writes,
--   keeping a message's versions on one page (the lease update cannot be HOT: it changes
--   lease_token, which the receive index's predicate reads);
-- * autovacuum runs on a dead-tuple count, not a fraction of a table that may be nearly empty
--   between bursts, and without cost throttling, so dead index entries do not pile up in
--   front of the receive scan.
-- There is deliberately no foreign key to queues: the key-share row lock it takes on every
-- insert makes concurrent producers of one queue share multixacts. send takes a shared
-- advisory lock on the queue instead, which deleteQueue takes exclusively.
CREATE TABLE holdline.messages (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue text NOT NULL,
  payload jsonb NOT NULL,
  headers jsonb CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object'),
  priority integer NOT NULL DEFAULT 0,
  run_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  -- A message is leased exactly when lease_token is set. The token fences ack, nack and
  -- extend: a receipt whose token no longer matches changes nothing.
  lease_token uuid,
  lease_expires_at timestamptz,
  dedup_key text CHECK (length(dedup_key) BETWEEN 1 AND 256),
  group_key text CHECK (length(group_key) BETWEEN 1 AND 256),
  origin_queue text,
  last_error text,
  dead_lettered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
) WITH (
  fillfactor = 80,
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 20000,
  autovacuum_analyze_scale_factor = 0.05,
  autovacuum_vacuum_cost_delay = 0
);

-- The receive statement: deliverable rows of one queue in delivery order. Leased rows are
-- left out of the index, so a queue with many leases does not slow the scan.
CREATE INDEX messages_receive_idx ON holdline.messages (queue, priority DESC, run_at, id)
  WHERE lease_token IS NULL;
-- The reaper: leases by expiry.
CREATE INDEX messages_lease_expiry_idx ON holdline.messages (lease_expires_at)
  WHERE lease_token IS NOT NULL;
-- Dedup: one live message per (queue, dedup_key); ON CONFLICT uses it.
CREATE UNIQUE INDEX messages_dedup_idx ON holdline.messages (queue, dedup_key)
  WHERE dedup_key IS NOT NULL;
-- Group FIFO: "is there an earlier message in my group?" is one probe.
CREATE INDEX messages_group_idx ON holdline.messages (queue, group_key, id)
  WHERE group_key IS NOT NULL;
-- Redrive and the dead_letters view.
CREATE INDEX messages_origin_idx ON holdline.messages (origin_queue, id)
  WHERE origin_queue IS NOT NULL;

-- A topic pattern's words become a regular expression over the topic written as
-- '.word.word': '*' is one word, '#' any number of words (AMQP topic exchange rules).
CREATE FUNCTION holdline.topic_pattern_regex(pattern text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT '^' || string_agg(
           CASE word WHEN '*' THEN '\.[^.]+' WHEN '#' THEN '(\.[^.]+)*' ELSE '\.' || word END,
           '' ORDER BY ord) || '$'
  FROM unnest(string_to_array(pattern, '.')) WITH ORDINALITY AS w(word, ord)
$$;

CREATE TABLE holdline.topic_bindings (
  queue text NOT NULL REFERENCES holdline.queues (name) ON DELETE CASCADE,
  pattern text NOT NULL CHECK (pattern ~ '^([A-Za-z0-9_-]+|\*|#)(\.([A-Za-z0-9_-]+|\*|#))*$'
                               AND length(pattern) <= 255),
  pattern_regex text NOT NULL GENERATED ALWAYS AS (holdline.topic_pattern_regex(pattern)) STORED,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue, pattern)
);

-- Queues that some consumer is idle-waiting on, one row per (queue, LISTEN backend). A send
-- notifies only when a row for its queue exists, so busy consumers cost producers nothing.
-- Unlogged: the rows describe live connections, which a crash ends anyway. Rows of a
-- backend that is gone are removed by the reaper.
CREATE UNLOGGED TABLE holdline.waiting_consumers (
  queue text NOT NULL,
  listener_pid integer NOT NULL,
  since timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue, listener_pid)
);

-- Deliveries per queue per minute, flushed by each service process every few seconds; the
-- estimated wait of a ready message divides its position by this recent rate.
CREATE TABLE holdline.dequeue_counts (
  queue text NOT NULL,
  minute timestamptz NOT NULL,
  deliveries bigint NOT NULL,
  PRIMARY KEY (queue, minute)
);
