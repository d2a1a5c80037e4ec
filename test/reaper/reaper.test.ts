import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Reaper } from '../../src/reaper/reaper.ts';
import type { ReapedLeases } from '../../src/reaper/reaper.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import {
  makeQueueWithMessages,
  markLeasedAndExpired,
  messageRow,
  silentLogger,
} from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

const INTERVAL_MS = 50;
/** How long a standby may take to lead: a few of its intervals, with room for a slow CI. */
const TAKEOVER_TIMEOUT_MS = 20 * INTERVAL_MS;

const started: Reaper[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.stop()));
});

/** A started reaper over the test database, stopped after the test. */
function startReaper(): Reaper {
  const reaper = new Reaper({
    db: t.db,
    connectionString: t.url,
    logger: silentLogger(),
    intervalMs: INTERVAL_MS,
  });
  started.push(reaper);
  reaper.start();
  return reaper;
}

/** Resolves with the reaper when it next reports leadership `leader`; rejects after timeoutMs. */
function leadership(reapers: Reaper[], leader: boolean, timeoutMs: number): Promise<Reaper> {
  return new Promise((resolve, reject) => {
    const listeners = reapers.map((reaper) => {
      const listener = (value: boolean): void => {
        if (value !== leader) return;
        done();
        resolve(reaper);
      };
      reaper.on('leadership', listener);
      return () => reaper.off('leadership', listener);
    });
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no reaper reported leadership=${leader} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      for (const off of listeners) off();
    };
  });
}

/** Resolves with the first 'reaped' event of `reaper` for `queue` that `accept` takes. */
function reaped(
  reaper: Reaper,
  accept: (r: ReapedLeases) => boolean,
  timeoutMs: number,
): Promise<ReapedLeases> {
  return new Promise((resolve, reject) => {
    const listener = (r: ReapedLeases): void => {
      if (!accept(r)) return;
      done();
      resolve(r);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no matching 'reaped' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      reaper.off('reaped', listener);
    };
    reaper.on('reaped', listener);
  });
}

/** Number of leaders seen at each sample, every few ms for `durationMs`. */
async function sampleLeaderCounts(reapers: Reaper[], durationMs: number): Promise<number[]> {
  const counts: number[] = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    counts.push(reapers.filter((r) => r.isLeader).length);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return counts;
}

/** Backends of this database holding the leader lock (namespace 'HLQU', key 1). */
async function lockHolders(): Promise<number[]> {
  const { rows } = await sql<{ pid: number }>`
    SELECT l.pid FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.classid = 1212961868 AND l.objid = 1 AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  `.execute(t.db);
  return rows.map((r) => r.pid);
}

describe('reaper leadership', () => {
  it('lets exactly one of two reapers lead at any time', async () => {
    const a = startReaper();
    const b = startReaper();
    const changes: boolean[] = [];
    a.on('leadership', (leader) => changes.push(leader));
    b.on('leadership', (leader) => changes.push(leader));
    await leadership([a, b], true, TAKEOVER_TIMEOUT_MS);

    const counts = await sampleLeaderCounts([a, b], 20 * INTERVAL_MS);
    expect(counts.length).toBeGreaterThan(10);
    expect(new Set(counts)).toEqual(new Set([1]));
    expect(changes).toEqual([true]);
    expect(await lockHolders()).toHaveLength(1);
  });

  it('hands leadership to the standby within a few intervals when the leader stops', async () => {
    const a = startReaper();
    const b = startReaper();
    const leader = await leadership([a, b], true, TAKEOVER_TIMEOUT_MS);
    const standby = leader === a ? b : a;
    expect(standby.isLeader).toBe(false);
    const [oldHolder] = await lockHolders();

    const takeover = leadership([standby], true, TAKEOVER_TIMEOUT_MS);
    const resigned = leadership([leader], false, TAKEOVER_TIMEOUT_MS);
    const during = sampleLeaderCounts([a, b], 10 * INTERVAL_MS);
    const stoppedAt = Date.now();
    await leader.stop();
    await leader.stop(); // a second stop is harmless
    await resigned;
    await takeover;
    expect(Date.now() - stoppedAt).toBeLessThan(TAKEOVER_TIMEOUT_MS);
    expect(Math.max(...(await during))).toBe(1);

    expect(standby.isLeader).toBe(true);
    expect(leader.isLeader).toBe(false);
    const holders = await lockHolders();
    expect(holders).toHaveLength(1);
    expect(holders[0]).not.toBe(oldHolder);
    // The stopped reaper stays out: it does not lead again.
    const counts = await sampleLeaderCounts([leader], 5 * INTERVAL_MS);
    expect(new Set(counts)).toEqual(new Set([0]));
  });

  it('restores one leader within a few intervals when the leader’s lock connection is killed', async () => {
    const a = startReaper();
    const b = startReaper();
    const leader = await leadership([a, b], true, TAKEOVER_TIMEOUT_MS);
    const [killed] = await lockHolders();
    expect(killed).toBeDefined();

    const lost = leadership([leader], false, TAKEOVER_TIMEOUT_MS);
    const regained = leadership([a, b], true, TAKEOVER_TIMEOUT_MS);
    const during = sampleLeaderCounts([a, b], 10 * INTERVAL_MS);
    const { rows } = await sql<{ terminated: boolean }>`
      SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
      WHERE pid = ${killed}::integer AND application_name = 'holdline-reaper'
    `.execute(t.db);
    expect(rows).toEqual([{ terminated: true }]);
    const killedAt = Date.now();
    await lost;
    await regained;
    expect(Date.now() - killedAt).toBeLessThan(TAKEOVER_TIMEOUT_MS);
    // Never two leaders, not even while the lock changes hands.
    expect(Math.max(...(await during))).toBe(1);

    expect([a, b].filter((r) => r.isLeader)).toHaveLength(1);
    const holders = await lockHolders();
    expect(holders).toHaveLength(1);
    expect(holders[0]).not.toBe(killed);
    const counts = await sampleLeaderCounts([a, b], 10 * INTERVAL_MS);
    expect(new Set(counts)).toEqual(new Set([1]));
  });
});

describe('reaper loop', () => {
  it('requeues and dead-letters expired leases in the leader’s loop, not the standby’s', async () => {
    const queue = 'reaper-loop';
    const {
      messages: [requeued, exhausted],
    } = await makeQueueWithMessages(t.db, queue, 2, { maxAttempts: 3 });
    const a = startReaper();
    const b = startReaper();
    const leader = await leadership([a, b], true, TAKEOVER_TIMEOUT_MS);
    const standby = leader === a ? b : a;
    const standbyReaped: ReapedLeases[] = [];
    standby.on('reaped', (r) => standbyReaped.push(r));

    const requeuedEvent = reaped(
      leader,
      (r) => r.queue === queue && r.deadLetterQueue === null,
      TAKEOVER_TIMEOUT_MS,
    );
    const deadLetteredEvent = reaped(
      leader,
      (r) => r.queue === queue && r.deadLetterQueue !== null,
      TAKEOVER_TIMEOUT_MS,
    );
    await markLeasedAndExpired(t.db, requeued!.id, { attempts: 1 });
    await markLeasedAndExpired(t.db, exhausted!.id, { attempts: 3 });

    expect(await requeuedEvent).toEqual({ queue, deadLetterQueue: null, messages: 1 });
    expect(await deadLetteredEvent).toEqual({
      queue,
      deadLetterQueue: `${queue}.dlq`,
      messages: 1,
    });
    expect(standbyReaped).toEqual([]);
    expect(await messageRow(t.db, requeued!.id)).toMatchObject({
      queue,
      lease_token: null,
      attempts: 1,
      last_error: 'lease expired',
    });
    expect(await messageRow(t.db, exhausted!.id)).toMatchObject({
      queue: `${queue}.dlq`,
      origin_queue: queue,
      lease_token: null,
      last_error: 'lease expired',
    });
  });
});
