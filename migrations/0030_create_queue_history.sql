-- 0030: the stats history: holdline.queue_history, one row per queue and minute, read by
-- the queueHistory query and the dashboard's charts.
-- Locks: only the table it creates; nothing existing is touched.
--
-- Nothing on the hot path writes it: each service instance counts in memory what its engine
-- does (sends, deliveries with their latency, acks, nacks, dead letters) and adds its counts
-- every few seconds, one upsert for all its queues (src/queue/history-meter.ts); the leader
-- adds the leases its reaper took back and the messages its schedules sent, samples each
-- queue's depth and oldest ready age twice a minute, and deletes rows past the retention (7
-- days by default) in bulk (src/reaper/history-keeper.ts).
CREATE TABLE holdline.queue_history (
  queue text NOT NULL,
  -- The start of the minute (UTC) the row counts.
  minute timestamptz NOT NULL,
  sent bigint NOT NULL DEFAULT 0,
  delivered bigint NOT NULL DEFAULT 0,
  acked bigint NOT NULL DEFAULT 0,
  nacked bigint NOT NULL DEFAULT 0,
  -- Messages moved to the dead-letter queue, by a nack or by an expired lease.
  dead_lettered bigint NOT NULL DEFAULT 0,
  -- Leases the reaper took back after they expired (requeued or dead-lettered).
  lease_expired bigint NOT NULL DEFAULT 0,
  -- Deliveries by latency (runAt to lease) in the buckets of src/queue/latency-histogram.ts,
  -- bucket i at index i + 1; instances' histograms add up element by element. NULL: none.
  delivery_latency_buckets bigint[],
  -- The leader's last sample in the minute: ready + delayed + leased, and the oldest ready
  -- message's age in seconds (NULL: none ready); all three NULL when it took no sample.
  depth bigint,
  oldest_ready_age double precision,
  sampled_at timestamptz,
  PRIMARY KEY (queue, minute)
) WITH (
  -- A minute's row is updated a few times (one per instance flush, two samples): room on
  -- its page keeps those updates HOT (no indexed column changes).
  fillfactor = 70
);
-- The retention's bulk delete of the oldest minutes.
CREATE INDEX queue_history_minute_idx ON holdline.queue_history (minute);
