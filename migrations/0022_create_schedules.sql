-- 0022: cron schedules: holdline.schedules (one row per schedule), holdline.schedule_ticks
-- (one row per tick fired, whose key makes a tick fire at most once) and
-- holdline.fire_schedule, through which the reaper's leader fires due ticks.
-- Locks: only the tables and the function it creates; nothing existing is touched.
--
-- Cron expressions and time zones are evaluated by the service (a maintained cron library,
-- croner), not in SQL: the service computes which ticks are due and the next one, and this
-- function applies that, atomically and at most once per tick.

-- One row per schedule. next_tick_at is the first tick not yet fired (or skipped): the
-- leader fires a schedule when it is due and moves it on. A paused schedule fires nothing;
-- resuming it starts from the next tick after the resume.
CREATE TABLE holdline.schedules (
  name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
  cron text NOT NULL CHECK (length(cron) BETWEEN 1 AND 256),
  timezone text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
  -- Deleting the queue deletes its schedules.
  queue text NOT NULL REFERENCES holdline.queues (name) ON DELETE CASCADE,
  payload jsonb NOT NULL,
  headers jsonb CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object'),
  priority integer NOT NULL DEFAULT 0,
  group_key text CHECK (length(group_key) BETWEEN 1 AND 256),
  -- Ticks missed while nothing ran (more than the on-time window late, see
  -- src/queue/cron.ts): NONE skips them, LATEST fires the latest one, ALL fires them all, at
  -- most catch_up_max (the latest ones).
  catch_up text NOT NULL DEFAULT 'LATEST' CHECK (catch_up IN ('NONE', 'LATEST', 'ALL')),
  catch_up_max integer NOT NULL DEFAULT 100 CHECK (catch_up_max BETWEEN 1 AND 1000),
  paused boolean NOT NULL DEFAULT false,
  next_tick_at timestamptz NOT NULL,
  last_tick_at timestamptz,
  last_message_id bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The leader's "which schedules are due" probe.
CREATE INDEX schedules_due_idx ON holdline.schedules (next_tick_at) WHERE NOT paused;

-- One row per tick fired. The primary key is what makes a tick fire at most once however
-- many leaders there are for an instant: a second attempt at the same tick conflicts and
-- sends nothing. The housekeeper deletes rows older than a week.
CREATE TABLE holdline.schedule_ticks (
  schedule text NOT NULL REFERENCES holdline.schedules (name) ON DELETE CASCADE,
  tick_at timestamptz NOT NULL,
  message_id bigint,
  fired_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schedule, tick_at)
);

-- Fires schedule p_name: sends one message per tick of p_ticks not fired before, in tick
-- order, and moves next_tick_at to p_next_tick_at. Does nothing (no row) unless the schedule
-- is not paused and its next_tick_at is still p_due_at, the value the caller computed the
-- ticks from: a schedule fired, paused, resumed or deleted meanwhile is left alone. Returns
-- each tick fired with its message id. Each message carries the schedule's payload, priority
-- and group key, and its headers plus "holdline-schedule" (the name) and "holdline-tick"
-- (the tick's time): a consumer can make its work idempotent by them.
CREATE FUNCTION holdline.fire_schedule(
  p_name text, p_due_at timestamptz, p_ticks timestamptz[], p_next_tick_at timestamptz
) RETURNS TABLE (tick_at timestamptz, message_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_schedule holdline.schedules;
  v_tick timestamptz;
  v_id bigint;
BEGIN
  UPDATE holdline.schedules s
  SET next_tick_at = p_next_tick_at, updated_at = now()
  WHERE s.name = p_name AND s.next_tick_at = p_due_at AND NOT s.paused
  RETURNING s.* INTO v_schedule;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  FOR v_tick IN SELECT t FROM unnest(p_ticks) AS t ORDER BY t LOOP
    INSERT INTO holdline.schedule_ticks AS k (schedule, tick_at) VALUES (p_name, v_tick)
    ON CONFLICT DO NOTHING;
    CONTINUE WHEN NOT FOUND;
    v_id := holdline.send_at(
      v_schedule.queue, v_schedule.payload, NULL, v_schedule.priority, NULL,
      v_schedule.group_key,
      coalesce(v_schedule.headers, '{}'::jsonb)
        || jsonb_build_object('holdline-schedule', p_name, 'holdline-tick', v_tick));
    UPDATE holdline.schedule_ticks k SET message_id = v_id
    WHERE k.schedule = p_name AND k.tick_at = v_tick;
    UPDATE holdline.schedules s SET last_tick_at = v_tick, last_message_id = v_id
    WHERE s.name = p_name;
    tick_at := v_tick;
    message_id := v_id;
    RETURN NEXT;
  END LOOP;
END
$$;
