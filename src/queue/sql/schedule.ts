/** The engine's statements on holdline.schedules and holdline.schedule_ticks (0022). */
import { Statement } from '../../db/statement.ts';

/** A row of holdline.schedules. */
export interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string;
  queue: string;
  payload: unknown;
  headers: Record<string, unknown> | null;
  priority: number;
  group_key: string | null;
  catch_up: 'NONE' | 'LATEST' | 'ALL';
  catch_up_max: number;
  paused: boolean;
  next_tick_at: Date;
  last_tick_at: Date | null;
  /** bigint: a string. */
  last_message_id: string | null;
  created_at: Date;
  updated_at: Date;
}

/** Inserts a schedule with every column given; no row when the name is taken. */
export const ScheduleInsert = new Statement<
  ScheduleRow,
  [
    name: string,
    cron: string,
    timezone: string,
    queue: string,
    payloadJson: string,
    headersJson: string | null,
    priority: number,
    groupKey: string | null,
    catchUp: string,
    catchUpMax: number,
    nextTickAt: Date,
  ]
>(
  'ScheduleInsert',
  `
  INSERT INTO holdline.schedules (name, cron, timezone, queue, payload, headers, priority,
                                  group_key, catch_up, catch_up_max, next_tick_at)
  VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::integer, $8, $9, $10::integer,
          $11::timestamptz)
  ON CONFLICT (name) DO NOTHING
  RETURNING *`,
);

/**
 * The size of payload $1 as a send measures it against the queue's limit: the bytes of its
 * jsonb text, which can differ from JSON.stringify's (key order, spacing, numbers).
 */
export const SchedulePayloadBytes = new Statement<{ bytes: number }, [payloadJson: string]>(
  'SchedulePayloadBytes',
  `SELECT octet_length($1::jsonb::text) AS bytes`,
);

/** Every schedule, or those of queue $1 (NULL: all), by name. */
export const ScheduleList = new Statement<ScheduleRow, [queue: string | null]>(
  'ScheduleList',
  `SELECT * FROM holdline.schedules WHERE $1::text IS NULL OR queue = $1 ORDER BY name`,
);

/** Schedule $1, or no row. */
export const ScheduleGetByName = new Statement<ScheduleRow, [name: string]>(
  'ScheduleGetByName',
  `SELECT * FROM holdline.schedules WHERE name = $1`,
);

/** Pauses schedule $1. No row: no such schedule. */
export const SchedulePause = new Statement<ScheduleRow, [name: string]>(
  'SchedulePause',
  `UPDATE holdline.schedules SET paused = true, updated_at = now() WHERE name = $1 RETURNING *`,
);

/**
 * Resumes schedule $1 from tick $2 (the first after the resume: ticks of the pause are not
 * caught up). A schedule that is not paused keeps its next tick. No row: no such schedule.
 */
export const ScheduleResume = new Statement<ScheduleRow, [name: string, nextTickAt: Date]>(
  'ScheduleResume',
  `
  UPDATE holdline.schedules
  SET next_tick_at = CASE WHEN paused THEN $2::timestamptz ELSE next_tick_at END,
      paused = false, updated_at = now()
  WHERE name = $1
  RETURNING *`,
);

/** Deletes schedule $1 with its fired ticks; rowCount says whether it existed. */
export const ScheduleDelete = new Statement<never, [name: string]>(
  'ScheduleDelete',
  `DELETE FROM holdline.schedules WHERE name = $1`,
);

/**
 * Up to $2 unpaused schedules whose next tick is due as of $1 (NULL: now()), earliest first,
 * with the clock they were judged by (schedules_due_idx).
 */
export const ScheduleListDue = new Statement<
  ScheduleRow & { observed_at: Date },
  [now: Date | null, limit: number]
>(
  'ScheduleListDue',
  `
  SELECT s.*, c.now AS observed_at
  FROM (SELECT coalesce($1::timestamptz, now()) AS now) c
  JOIN holdline.schedules s ON NOT s.paused AND s.next_tick_at <= c.now
  ORDER BY s.next_tick_at
  LIMIT $2::integer`,
);

/**
 * Fires schedule $1 if its next tick is still $2: one message per tick of $3 not fired
 * before, and next_tick_at moved to $4 (holdline.fire_schedule, 0022). A row per tick fired.
 */
export const ScheduleFire = new Statement<
  { tick_at: Date; message_id: string },
  [name: string, dueAt: Date, ticks: Date[], nextTickAt: Date]
>(
  'ScheduleFire',
  `SELECT tick_at, message_id::text AS message_id
     FROM holdline.fire_schedule($1, $2::timestamptz, $3::timestamptz[], $4::timestamptz)`,
);

/** Deletes fired ticks older than $1 (an interval text, e.g. '7 days'). */
export const ScheduleTickDeleteOlderThan = new Statement<never, [keep: string]>(
  'ScheduleTickDeleteOlderThan',
  `DELETE FROM holdline.schedule_ticks WHERE fired_at < now() - $1::interval`,
);
