/**
 * A cron schedule firing every second on three reapers (three "instances") while the
 * leader is killed twice: exactly one message per tick, and with catchUp ALL none missing.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { createSchedule } from '../../src/queue/operations.ts';
import { Reaper } from '../../src/reaper/reaper.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { makeQueue, silentLogger } from '../helpers/factories.ts';
import { pollUntil } from '../helpers/notifications.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

const INSTANCES = 3;
const INTERVAL_MS = 100;
/** How long the schedule runs in all, and when the leader is killed. */
const RUN_MS = 12_000;
const KILLS_AT_MS = [3_500, 7_500];

/** The backend holding the reaper's leader lock in the test database, if any. */
async function leaderPid(): Promise<number | undefined> {
  const { rows } = await sql<{ pid: number }>`
    SELECT l.pid FROM pg_locks l
    JOIN pg_database d ON d.oid = l.database AND d.datname = current_database()
    WHERE l.locktype = 'advisory' AND l.classid = 1212961868 AND l.objid = 1 AND l.granted
  `.execute(t.db);
  return rows[0]?.pid;
}

describe('schedule firing across leader failover', () => {
  it('sends exactly one message per second-tick while the leader is killed twice', async () => {
    await makeQueue(t.db, 'failover-ticks');
    await createSchedule(t.db, {
      input: {
        name: 'every-second',
        cron: '* * * * * *',
        queue: 'failover-ticks',
        message: { payload: 'tick' },
        catchUp: 'ALL',
      },
    });
    const pools: Kysely<Database>[] = [];
    const reapers = Array.from({ length: INSTANCES }, () => {
      const db = createDatabase(createPool({ connectionString: t.url, max: 2 }));
      pools.push(db);
      return new Reaper({
        db,
        connectionString: t.url,
        logger: silentLogger(),
        intervalMs: INTERVAL_MS,
        scheduleIntervalMs: INTERVAL_MS,
      });
    });
    const killed: number[] = [];
    try {
      for (const reaper of reapers) reaper.start();
      const started = Date.now();
      for (const killAt of KILLS_AT_MS) {
        await new Promise((resolve) => setTimeout(resolve, killAt - (Date.now() - started)));
        await pollUntil('a leader', async () => (await leaderPid()) !== undefined);
        const pid = (await leaderPid())!;
        await sql`SELECT pg_terminate_backend(${pid})`.execute(t.db);
        killed.push(pid);
        await pollUntil('a new leader', async () => {
          const now = await leaderPid();
          return now !== undefined && now !== pid;
        });
      }
      await new Promise((resolve) => setTimeout(resolve, RUN_MS - (Date.now() - started)));
    } finally {
      await Promise.all(reapers.map((r) => r.stop()));
      await Promise.all(pools.map((db) => db.destroy()));
    }
    expect(killed).toHaveLength(2);

    const { rows } = await sql<{ tick: number; messages: number }>`
      SELECT extract(epoch FROM k.tick_at)::float8 AS tick, count(m.id)::integer AS messages
      FROM holdline.schedule_ticks k
      LEFT JOIN holdline.messages m
        ON m.headers->>'holdline-schedule' = k.schedule AND m.id = k.message_id
      WHERE k.schedule = 'every-second'
      GROUP BY k.tick_at ORDER BY k.tick_at
    `.execute(t.db);
    const { rows: sent } = await sql<{ n: number; distinct_ticks: number }>`
      SELECT count(*)::integer AS n,
             count(DISTINCT headers->>'holdline-tick')::integer AS distinct_ticks
      FROM holdline.messages WHERE queue = 'failover-ticks'
    `.execute(t.db);
    // Exactly one message per tick: as many messages as distinct ticks, each tick one message.
    expect(sent[0]!.n).toBe(sent[0]!.distinct_ticks);
    expect(rows.every((r) => r.messages === 1)).toBe(true);
    expect(sent[0]!.n).toBe(rows.length);
    // None missing (catchUp ALL): consecutive seconds from the first tick to the last.
    const seconds = rows.map((r) => r.tick);
    for (let i = 1; i < seconds.length; i++) expect(seconds[i]! - seconds[i - 1]!).toBe(1);
    expect(rows.length).toBeGreaterThanOrEqual(RUN_MS / 1000 - 2);
  }, 30_000);
});
