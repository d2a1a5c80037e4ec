/**
 * Cron schedules: validation, exactly one message per tick on a moved clock and under
 * concurrent passes, catchUp, pause and resume, and DST in two time zones.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import {
  createSchedule,
  deleteSchedule,
  fireDueSchedules,
  listSchedules,
  pauseSchedule,
  resumeSchedule,
} from '../../src/queue/operations.ts';
import type { Executor, ScheduleInput } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { makeQueue } from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});
// Each test moves the clock its own way: another test's schedules would be due on it.
beforeEach(async () => {
  await sql`DELETE FROM holdline.schedules`.execute(t.db);
});

/** The ticks a schedule's messages were sent for, in id order, as ISO strings. */
async function sentTicks(db: Executor, schedule: string): Promise<string[]> {
  const { rows } = await sql<{ tick: string }>`
    SELECT headers->>'holdline-tick' AS tick FROM holdline.messages
    WHERE headers->>'holdline-schedule' = ${schedule}
    ORDER BY id
  `.execute(db);
  return rows.map((r) => new Date(r.tick).toISOString());
}

function at(iso: string): Date {
  return new Date(iso);
}

/** Fires passes at each of `times`, in order. */
async function fireAt(times: Date[]): Promise<void> {
  for (const now of times) await fireDueSchedules(t.db, { now });
}

/** Every `stepSeconds` from `from` to `to`, inclusive. */
function clock(from: string, to: string, stepSeconds: number): Date[] {
  const times: Date[] = [];
  for (let ms = at(from).getTime(); ms <= at(to).getTime(); ms += stepSeconds * 1000) {
    times.push(new Date(ms));
  }
  return times;
}

async function create(
  input: Partial<ScheduleInput> & { name: string; cron: string; queue: string },
  now: string,
): Promise<void> {
  await createSchedule(t.db, {
    input: { message: { payload: { job: input.name } }, ...input },
    now: at(now),
  });
}

describe('createSchedule', () => {
  it('refuses bad input with BAD_USER_INPUT, a missing queue and a taken name, writing nothing', async () => {
    await makeQueue(t.db, 'sched-bad');
    const base = { name: 'bad', cron: '0 * * * *', queue: 'sched-bad', message: { payload: 1 } };
    const refusals: [Partial<ScheduleInput>, string][] = [
      [{ cron: 'every day' }, 'BAD_USER_INPUT'],
      [{ cron: '61 * * * *' }, 'BAD_USER_INPUT'],
      [{ cron: '0 0 30 2 *' }, 'BAD_USER_INPUT'], // February 30th never comes
      [{ timezone: 'Mars/Olympus_Mons' }, 'BAD_USER_INPUT'],
      [{ catchUpMax: 0 }, 'BAD_USER_INPUT'],
      [{ catchUpMax: 1001 }, 'BAD_USER_INPUT'],
      [{ catchUp: 'SOME' as never }, 'BAD_USER_INPUT'],
      [{ name: 'has space' }, 'BAD_USER_INPUT'],
      [{ message: { payload: 1, delaySeconds: 5 } }, 'BAD_USER_INPUT'],
      [{ message: { payload: 1, dedupKey: 'k' } }, 'BAD_USER_INPUT'],
      [{ message: { payload: null } }, 'BAD_USER_INPUT'],
      [{ queue: 'sched-nobody' }, 'QUEUE_NOT_FOUND'],
    ];
    for (const [change, code] of refusals) {
      await expect(createSchedule(t.db, { input: { ...base, ...change } })).rejects.toMatchObject({
        code,
      });
    }
    expect(await listSchedules(t.db)).toEqual([]);
    await createSchedule(t.db, { input: base });
    await expect(createSchedule(t.db, { input: base })).rejects.toMatchObject({
      code: 'SCHEDULE_EXISTS',
    });
    expect(await deleteSchedule(t.db, { name: 'bad' })).toBe(true);
    expect(await deleteSchedule(t.db, { name: 'bad' })).toBe(false);
  });

  it('measures the payload as a send does: by its jsonb text, not JSON.stringify', async () => {
    // {"a":1,"b":2,"c":3} is 19 bytes as JSON.stringify writes it; PostgreSQL's jsonb text,
    // which every tick's send measures, is {"a": 1, "b": 2, "c": 3}: 24 bytes.
    await makeQueue(t.db, 'sched-size', { maxPayloadBytes: 20 });
    const input = { name: 'size', cron: '0 * * * *', queue: 'sched-size' };
    await expect(
      createSchedule(t.db, { input: { ...input, message: { payload: { a: 1, b: 2, c: 3 } } } }),
    ).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: 'the payload is 24 bytes; queue "sched-size" accepts at most 20 bytes',
    });
    expect(await listSchedules(t.db)).toEqual([]);
    await createSchedule(t.db, { input: { ...input, message: { payload: { a: 1, b: 2 } } } });
    expect((await listSchedules(t.db)).map((s) => s.name)).toEqual(['size']);
    await deleteSchedule(t.db, { name: 'size' });
  });
});

describe('firing on a moved clock', () => {
  it('sends exactly one message per tick, with the schedule and tick in its headers', async () => {
    await makeQueue(t.db, 'sched-minutes');
    await create(
      { name: 'minutes', cron: '*/5 * * * *', queue: 'sched-minutes', catchUp: 'NONE' },
      '2026-06-01T10:00:30Z',
    );
    // Passes every 2 s, each tick on time, the same instants passed twice over.
    const times = clock('2026-06-01T10:04:58Z', '2026-06-01T10:15:02Z', 2);
    await fireAt([...times, ...times]);
    expect(await sentTicks(t.db, 'minutes')).toEqual([
      '2026-06-01T10:05:00.000Z',
      '2026-06-01T10:10:00.000Z',
      '2026-06-01T10:15:00.000Z',
    ]);
    const { rows } = await sql<{ payload: unknown; priority: number }>`
      SELECT payload, priority FROM holdline.messages WHERE queue = 'sched-minutes'
    `.execute(t.db);
    expect(rows[0]).toEqual({ payload: { job: 'minutes' }, priority: 0 });
    const [schedule] = await listSchedules(t.db, { queue: 'sched-minutes' });
    expect(schedule).toMatchObject({
      lastTickAt: at('2026-06-01T10:15:00Z'),
      nextTickAt: at('2026-06-01T10:20:00Z'),
    });
  });

  it('fires each tick once when passes on separate connections race', async () => {
    await makeQueue(t.db, 'sched-race');
    await create(
      { name: 'race', cron: '* * * * * *', queue: 'sched-race', catchUp: 'ALL' },
      '2026-06-01T11:00:00Z',
    );
    const pools = Array.from({ length: 4 }, () =>
      createDatabase(createPool({ connectionString: t.url, max: 1 })),
    );
    try {
      for (const now of clock('2026-06-01T11:00:01Z', '2026-06-01T11:00:30Z', 1)) {
        await Promise.all(pools.map((db) => fireDueSchedules(db, { now })));
      }
    } finally {
      await Promise.all(pools.map((db) => db.destroy()));
    }
    const ticks = await sentTicks(t.db, 'race');
    expect(ticks).toEqual(
      clock('2026-06-01T11:00:01Z', '2026-06-01T11:00:30Z', 1).map((d) => d.toISOString()),
    );
  });
});

describe('catchUp after a gap with nothing running', () => {
  // Every minute; nothing ran from 12:00:30 to 13:00:30, so 60 ticks were missed.
  const CREATED = '2026-06-01T12:00:30Z';
  const BACK = '2026-06-01T13:00:30Z';

  it('NONE skips the missed ticks and goes on from the next one', async () => {
    await makeQueue(t.db, 'sched-none');
    await create(
      { name: 'none', cron: '* * * * *', queue: 'sched-none', catchUp: 'NONE' },
      CREATED,
    );
    await fireAt([at(BACK), at('2026-06-01T13:01:01Z')]);
    expect(await sentTicks(t.db, 'none')).toEqual(['2026-06-01T13:01:00.000Z']);
  });

  it('LATEST fires the latest missed tick once', async () => {
    await makeQueue(t.db, 'sched-latest');
    await create(
      { name: 'latest', cron: '* * * * *', queue: 'sched-latest', catchUp: 'LATEST' },
      CREATED,
    );
    await fireAt([at(BACK), at(BACK), at('2026-06-01T13:01:01Z')]);
    expect(await sentTicks(t.db, 'latest')).toEqual([
      '2026-06-01T13:00:00.000Z',
      '2026-06-01T13:01:00.000Z',
    ]);
  });

  it('ALL fires the latest catchUpMax missed ticks, oldest first', async () => {
    await makeQueue(t.db, 'sched-all');
    await create(
      { name: 'all', cron: '* * * * *', queue: 'sched-all', catchUp: 'ALL', catchUpMax: 3 },
      CREATED,
    );
    await fireAt([at(BACK)]);
    expect(await sentTicks(t.db, 'all')).toEqual([
      '2026-06-01T12:58:00.000Z',
      '2026-06-01T12:59:00.000Z',
      '2026-06-01T13:00:00.000Z',
    ]);
  });
});

describe('pause and resume', () => {
  it('fires nothing while paused, and resumes from the first tick after the resume', async () => {
    await makeQueue(t.db, 'sched-pause');
    await create(
      { name: 'pause', cron: '* * * * *', queue: 'sched-pause', catchUp: 'ALL' },
      '2026-06-01T14:00:30Z',
    );
    expect((await pauseSchedule(t.db, { name: 'pause' })).paused).toBe(true);
    await fireAt(clock('2026-06-01T14:01:00Z', '2026-06-01T14:05:00Z', 30));
    expect(await sentTicks(t.db, 'pause')).toEqual([]);
    const resumed = await resumeSchedule(t.db, { name: 'pause', now: at('2026-06-01T14:05:10Z') });
    expect(resumed).toMatchObject({ paused: false, nextTickAt: at('2026-06-01T14:06:00Z') });
    await fireAt([at('2026-06-01T14:06:01Z')]);
    expect(await sentTicks(t.db, 'pause')).toEqual(['2026-06-01T14:06:00.000Z']);
    await expect(pauseSchedule(t.db, { name: 'nobody' })).rejects.toMatchObject({
      code: 'SCHEDULE_NOT_FOUND',
    });
  });
});

describe('time zones and DST', () => {
  /** Passes every 5 s over the range: every tick is on time. */
  async function runDays(from: string, to: string): Promise<void> {
    await fireAt(clock(from, to, 5));
  }

  it('fires a daily 02:30 in Europe/Berlin once per day across the spring-forward gap', async () => {
    await makeQueue(t.db, 'sched-berlin');
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    await create(
      {
        name: 'berlin',
        cron: '30 2 * * *',
        timezone: 'Europe/Berlin',
        queue: 'sched-berlin',
        catchUp: 'NONE',
      },
      '2026-03-28T00:00:00Z',
    );
    await runDays('2026-03-28T00:59:00Z', '2026-03-28T01:31:00Z');
    await runDays('2026-03-29T00:29:00Z', '2026-03-29T01:31:00Z');
    await runDays('2026-03-30T00:29:00Z', '2026-03-30T00:31:00Z');
    const ticks = await sentTicks(t.db, 'berlin');
    expect(ticks).toHaveLength(3);
    expect(ticks[0]).toBe('2026-03-28T01:30:00.000Z'); // 02:30 CET
    // The gap: once, at the first valid time after it (03:00 CEST).
    expect(ticks[1]).toBe('2026-03-29T01:00:00.000Z');
    expect(ticks[2]).toBe('2026-03-30T00:30:00.000Z'); // 02:30 CEST
  });

  it('fires a daily 01:30 in America/New_York once on the fall-back day, an hourly one 25 times', async () => {
    await makeQueue(t.db, 'sched-ny');
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice.
    for (const [name, cron] of [
      ['ny-daily', '30 1 * * *'],
      ['ny-hourly', '0 * * * *'],
    ] as const) {
      // ALL: a pass a minute finds each tick up to a minute late, past the on-time window.
      await create(
        { name, cron, timezone: 'America/New_York', queue: 'sched-ny', catchUp: 'ALL' },
        '2026-11-01T03:59:00Z',
      );
    }
    // From local midnight (04:00Z, EDT) to the next local midnight (05:00Z, EST): 25 hours.
    await fireAt(clock('2026-11-01T03:59:30Z', '2026-11-02T05:00:30Z', 60));
    const daily = await sentTicks(t.db, 'ny-daily');
    expect(daily).toEqual(['2026-11-01T05:30:00.000Z']);
    const hourly = await sentTicks(t.db, 'ny-hourly');
    expect(hourly).toHaveLength(26); // 00:00 EDT through 00:00 EST the next day, inclusive
    expect(hourly[0]).toBe('2026-11-01T04:00:00.000Z');
    expect(hourly.at(-1)).toBe('2026-11-02T05:00:00.000Z');
  });
});
