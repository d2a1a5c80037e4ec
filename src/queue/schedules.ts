import { CronSchedule } from './cron.ts';
import { QueueError, badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { getQueue, queueNotFound } from './queues.ts';
import {
  ScheduleDelete,
  ScheduleFire,
  ScheduleGetByName,
  ScheduleInsert,
  ScheduleList,
  ScheduleListDue,
  SchedulePause,
  SchedulePayloadBytes,
  ScheduleResume,
} from './sql/index.ts';
import type { ScheduleRow } from './sql/index.ts';
import type { CatchUp, Schedule, ScheduleInput } from './types.ts';
import { validateInteger, validateQueueName, validateSendInput } from './validation.ts';

/** A schedule's time zone when createSchedule names none. */
export const SCHEDULE_TIMEZONE_DEFAULT = 'UTC';
/** What a schedule does with missed ticks when createSchedule does not say. */
export const CATCH_UP_DEFAULT: CatchUp = 'LATEST';
/** Most missed ticks a catchUp ALL schedule fires at once, by default, and at most. */
export const CATCH_UP_MAX_DEFAULT = 100;
export const CATCH_UP_MAX_LIMIT = 1000;
/** Due schedules one firing pass handles; the rest wait for the next pass. */
export const SCHEDULES_PER_PASS_DEFAULT = 100;
/** The latest a stored schedule can be due: where one with no tick left is parked. */
const NEVER = new Date('9999-12-31T00:00:00Z');

const CATCH_UPS: readonly CatchUp[] = ['NONE', 'LATEST', 'ALL'];

function toSchedule(row: ScheduleRow): Schedule {
  return {
    name: row.name,
    cron: row.cron,
    timezone: row.timezone,
    queue: row.queue,
    message: {
      payload: row.payload,
      headers: row.headers,
      priority: row.priority,
      groupKey: row.group_key,
    },
    catchUp: row.catch_up,
    catchUpMax: row.catch_up_max,
    paused: row.paused,
    nextTickAt: row.next_tick_at,
    lastTickAt: row.last_tick_at,
    lastMessageId: row.last_message_id,
    createdAt: row.created_at,
  };
}

export function scheduleNotFound(name: string): QueueError {
  return new QueueError('SCHEDULE_NOT_FOUND', `schedule "${name}" does not exist`);
}

/**
 * Creates a schedule: from its first tick after now on, the reaper's leader sends `message`
 * into `queue` once per tick of `cron` read in `timezone`. Refuses with BAD_USER_INPUT a
 * malformed expression, an unknown time zone, an expression that never fires, a message with
 * delaySeconds, runAt or dedupKey, or a payload over the queue's limit; QUEUE_NOT_FOUND,
 * SCHEDULE_EXISTS. Nothing is written then.
 */
export async function createSchedule(
  db: Executor,
  params: { input: ScheduleInput; now?: Date },
): Promise<Schedule> {
  const input = params.input;
  if (input === null || typeof input !== 'object') throw badInput('schedule must be an object');
  const name = validateQueueName(input.name, 'schedule name');
  const queueName = validateQueueName(input.queue);
  const cron = new CronSchedule(input.cron, input.timezone ?? SCHEDULE_TIMEZONE_DEFAULT);
  const catchUp = input.catchUp ?? CATCH_UP_DEFAULT;
  if (!CATCH_UPS.includes(catchUp)) throw badInput('catchUp must be NONE, LATEST or ALL');
  const catchUpMax = validateInteger(
    input.catchUpMax ?? CATCH_UP_MAX_DEFAULT,
    'catchUpMax',
    1,
    CATCH_UP_MAX_LIMIT,
  );
  const message = input.message;
  validateSendInput(message);
  if (message.delaySeconds != null || message.runAt != null || message.dedupKey != null) {
    throw badInput('a scheduled message takes no delaySeconds, runAt or dedupKey');
  }
  const now = params.now ?? new Date();
  const first = cron.nextAfter(now);
  if (first === null) throw badInput(`cron "${cron.cron}" never fires after now`);
  const queue = await getQueue(db, { name: queueName });
  if (queue === undefined) throw queueNotFound(queueName);
  const payloadJson = JSON.stringify(message.payload);
  // Measured as every tick's send will measure it, so a payload accepted here is never
  // refused at each tick for a few bytes.
  const { rows: sized } = await translated(() => SchedulePayloadBytes.run(db, [payloadJson]));
  const bytes = sized[0]!.bytes;
  if (bytes > queue.config.maxPayloadBytes) {
    throw badInput(
      `the payload is ${bytes} bytes; queue "${queueName}" accepts at most ${queue.config.maxPayloadBytes} bytes`,
    );
  }
  const { rows } = await translated(() =>
    ScheduleInsert.run(db, [
      name,
      cron.cron,
      cron.timezone,
      queueName,
      payloadJson,
      message.headers == null ? null : JSON.stringify(message.headers),
      message.priority ?? 0,
      message.groupKey ?? null,
      catchUp,
      catchUpMax,
      first,
    ]),
  );
  const row = rows[0];
  if (row === undefined) {
    throw new QueueError('SCHEDULE_EXISTS', `schedule "${name}" already exists`);
  }
  return toSchedule(row);
}

/** Every schedule, or those sending into `queue`, by name. */
export async function listSchedules(
  db: Executor,
  params: { queue?: string | null } = {},
): Promise<Schedule[]> {
  const queue = params.queue == null ? null : validateQueueName(params.queue);
  const { rows } = await translated(() => ScheduleList.run(db, [queue]));
  return rows.map(toSchedule);
}

/** One schedule, or undefined. */
export async function getSchedule(
  db: Executor,
  params: { name: string },
): Promise<Schedule | undefined> {
  const name = validateQueueName(params.name, 'schedule name');
  const { rows } = await translated(() => ScheduleGetByName.run(db, [name]));
  const row = rows[0];
  return row === undefined ? undefined : toSchedule(row);
}

/** Stops a schedule firing; SCHEDULE_NOT_FOUND. */
export async function pauseSchedule(db: Executor, params: { name: string }): Promise<Schedule> {
  const name = validateQueueName(params.name, 'schedule name');
  const { rows } = await translated(() => SchedulePause.run(db, [name]));
  if (rows[0] === undefined) throw scheduleNotFound(name);
  return toSchedule(rows[0]);
}

/**
 * Resumes a paused schedule from its first tick after now: ticks that fell in the pause are
 * not caught up. A schedule that is not paused is left as it is. SCHEDULE_NOT_FOUND.
 */
export async function resumeSchedule(
  db: Executor,
  params: { name: string; now?: Date },
): Promise<Schedule> {
  const current = await getSchedule(db, params);
  if (current === undefined) throw scheduleNotFound(params.name);
  const next = new CronSchedule(current.cron, current.timezone).nextAfter(params.now ?? new Date());
  const { rows } = await translated(() => ScheduleResume.run(db, [current.name, next ?? NEVER]));
  if (rows[0] === undefined) throw scheduleNotFound(current.name);
  return toSchedule(rows[0]);
}

/** Deletes a schedule; false when there was none. Messages it sent stay. */
export async function deleteSchedule(db: Executor, params: { name: string }): Promise<boolean> {
  const name = validateQueueName(params.name, 'schedule name');
  const result = await translated(() => ScheduleDelete.run(db, [name]));
  return (result.numAffectedRows ?? 0n) > 0n;
}

/** What one firing pass did with one schedule. */
export interface FiredSchedule {
  schedule: string;
  queue: string;
  /** Ticks fired, oldest first, with the message each sent. */
  ticks: { tickAt: Date; messageId: string }[];
}

/** A schedule a firing pass could not evaluate (its cron or time zone, changed in SQL). */
export interface ScheduleFailure {
  schedule: string;
  error: unknown;
}

/**
 * One firing pass as of `now` (default: the database clock): for each due, unpaused
 * schedule (up to `limit`, earliest first), the ticks its catchUp says to fire, each sending
 * one message, in one statement per schedule. Exactly once per tick under any number of
 * concurrent passes: a schedule is fired only if its next tick is still the one its ticks
 * were computed from, and each tick's (schedule, tick) key refuses a second
 * message. Safe to run from two processes at once.
 */
export async function fireDueSchedules(
  db: Executor,
  params: { now?: Date; limit?: number } = {},
): Promise<{ fired: FiredSchedule[]; failed: ScheduleFailure[] }> {
  const limit = params.limit ?? SCHEDULES_PER_PASS_DEFAULT;
  const { rows } = await translated(() => ScheduleListDue.run(db, [params.now ?? null, limit]));
  const fired: FiredSchedule[] = [];
  const failed: ScheduleFailure[] = [];
  for (const row of rows) {
    let plan: { ticks: Date[]; next: Date | null };
    try {
      plan = new CronSchedule(row.cron, row.timezone).dueTicks({
        dueAt: row.next_tick_at,
        now: row.observed_at,
        catchUp: row.catch_up,
        catchUpMax: row.catch_up_max,
      });
    } catch (error) {
      failed.push({ schedule: row.name, error });
      continue;
    }
    const result = await translated(() =>
      ScheduleFire.run(db, [row.name, row.next_tick_at, plan.ticks, plan.next ?? NEVER]),
    );
    if (result.rows.length > 0) {
      fired.push({
        schedule: row.name,
        queue: row.queue,
        ticks: result.rows.map((r) => ({ tickAt: r.tick_at, messageId: r.message_id })),
      });
    }
  }
  return { fired, failed };
}
