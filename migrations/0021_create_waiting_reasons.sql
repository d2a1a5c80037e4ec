-- 0021: why a message is waiting. Adds holdline.waiting_reason (one message) and the view
-- holdline.queue_waiting (a queue's unleased messages counted by reason).
-- Locks: none beyond creating a function and a view.
--
-- The reasons, in the order they are judged (the first that holds is the answer):
--   BACKING_OFF           not yet due, after a failed delivery (attempts > 0): a nack or an
--                         expired lease set its retry time; next eligible at run_at
--   DELAYED               not yet due, never delivered (delaySeconds or runAt); at run_at
--   QUEUE_PAUSED          due, but the queue is paused
--   GROUP_HEAD_IN_FLIGHT  due, but an earlier message of its group is still in the queue
--                         (leased, or waiting itself): groups deliver one at a time, in order
--   CONCURRENCY_CAP       due, but the queue's max_in_flight leases are all held
--   RATE_LIMITED          due, but the queue's rate limit has no token left (none yet: a
--                         later migration fills it in with the rate limits)
--   READY                 a receive now would lease it, once the messages ahead have gone
-- A leased message is not waiting: no reason.

-- The reason message p_id waits as of p_now (NULL: now()), and when it will next be eligible
-- where that is known (a due time; now for READY); no row when the message does not exist.
-- Uses the primary key, messages_group_idx for the group probe and messages_leased_idx for
-- the cap's count.
CREATE FUNCTION holdline.waiting_reason(p_id bigint, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (reason text, next_eligible_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT w.reason,
         CASE w.reason WHEN 'BACKING_OFF' THEN w.run_at WHEN 'DELAYED' THEN w.run_at
                       WHEN 'READY' THEN w.now END
  FROM (
    SELECT m.run_at, c.now,
           CASE
             WHEN m.lease_token IS NOT NULL THEN NULL
             WHEN m.run_at > c.now AND m.attempts > 0 THEN 'BACKING_OFF'
             WHEN m.run_at > c.now THEN 'DELAYED'
             WHEN q.paused THEN 'QUEUE_PAUSED'
             WHEN m.group_key IS NOT NULL AND EXISTS (
                    SELECT 1 FROM holdline.messages e
                    WHERE e.queue = m.queue AND e.group_key = m.group_key AND e.id < m.id)
               THEN 'GROUP_HEAD_IN_FLIGHT'
             WHEN q.max_in_flight IS NOT NULL AND (
                    SELECT count(*) FROM (SELECT FROM holdline.messages l
                                          WHERE l.queue = m.queue AND l.lease_token IS NOT NULL
                                          LIMIT q.max_in_flight) held) >= q.max_in_flight
               THEN 'CONCURRENCY_CAP'
             ELSE 'READY'
           END AS reason
    FROM (SELECT coalesce(p_now, now()) AS now) c
    JOIN holdline.messages m ON m.id = p_id
    LEFT JOIN holdline.queues q ON q.name = m.queue
  ) w
$$;

-- Each queue's unleased messages counted by the reason they wait (as waiting_reason judges
-- it), beside its leases and its cap. Costlier than queue_stats, which it leaves as it was:
-- every due message of a group is probed for an earlier one (messages_group_idx), so it is
-- for asking "why is my queue not draining", not for polling many times a second.
CREATE VIEW holdline.queue_waiting AS
WITH per_queue AS (
  SELECT q.name, q.paused, q.max_in_flight,
         (SELECT count(*) FROM holdline.messages l
          WHERE l.queue = q.name AND l.lease_token IS NOT NULL) AS leased
  FROM holdline.queues q
), classified AS (
  SELECT m.queue,
         CASE
           WHEN m.run_at > now() AND m.attempts > 0 THEN 'BACKING_OFF'
           WHEN m.run_at > now() THEN 'DELAYED'
           WHEN p.paused THEN 'QUEUE_PAUSED'
           WHEN m.group_key IS NOT NULL AND EXISTS (
                  SELECT 1 FROM holdline.messages e
                  WHERE e.queue = m.queue AND e.group_key = m.group_key AND e.id < m.id)
             THEN 'GROUP_HEAD_IN_FLIGHT'
           WHEN p.max_in_flight IS NOT NULL AND p.leased >= p.max_in_flight THEN 'CONCURRENCY_CAP'
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
