/**
 * Rate limits per message group (queue setting groupRateLimit): a token bucket per group key,
 * in PostgreSQL, that every receive of the queue draws from for that group; on an injected
 * clock, beside the other flow limits, and under eager concurrent consumers on two engines.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  QueueMaintenance,
  ack,
  configureQueue,
  getMessage,
  receive,
  waitingCounts,
} from '../../src/queue/operations.ts';
import type { Delivery } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { databaseNow, makeQueue, secondsAfter, sendMessages } from '../helpers/factories.ts';
import { busiestWindow, runRateLimited } from '../helpers/rate-limit-run.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

/** Deliveries counted by group key ('' for none). */
function byGroup(deliveries: Delivery[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const d of deliveries) {
    const key = d.message.groupKey ?? '';
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** `perGroup` messages in each of `groups`, interleaved in send order, then `ungrouped` more. */
async function sendGrouped(
  queue: string,
  groups: string[],
  perGroup: number,
  ungrouped = 0,
): Promise<void> {
  await sendMessages(t.db, queue, groups.length * perGroup, (i) => ({
    payload: { i },
    groupKey: groups[i % groups.length],
  }));
  if (ungrouped > 0) await sendMessages(t.db, queue, ungrouped);
}

describe('groupRateLimit on an injected clock', () => {
  it('gives each group a bucket of its own and leaves ungrouped messages alone', async () => {
    const queue = 'group-rate-clock';
    await makeQueue(t.db, queue, {
      groupRateLimit: { count: 2, perSeconds: 1 },
      groupMaxInFlight: 100,
    });
    await sendGrouped(queue, ['a', 'b'], 10, 5);
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    // A full bucket each: two of a, two of b, and every ungrouped message.
    expect(byGroup(await receive(t.db, { queue, max: 100, now: t0 }))).toEqual({
      a: 2,
      b: 2,
      '': 5,
    });
    expect(await receive(t.db, { queue, max: 100, now: t0 })).toHaveLength(0);
    // Half a second later: one token each (2 per second).
    expect(byGroup(await receive(t.db, { queue, max: 100, now: secondsAfter(t0, 0.5) }))).toEqual({
      a: 1,
      b: 1,
    });
    // An hour idle fills each bucket to its size, no further.
    expect(byGroup(await receive(t.db, { queue, max: 100, now: secondsAfter(t0, 3600) }))).toEqual({
      a: 2,
      b: 2,
    });
  });

  it('holds back only the group that spent its tokens, in delivery order otherwise', async () => {
    const queue = 'group-rate-others';
    await makeQueue(t.db, queue, {
      groupRateLimit: { count: 1, perSeconds: 60 },
      groupMaxInFlight: 100,
    });
    // Ten of the busy group first, then one message of each of three quiet groups.
    await sendGrouped(queue, ['busy'], 10);
    await sendGrouped(queue, ['q1', 'q2', 'q3'], 1);
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    const first = await receive(t.db, { queue, max: 3, now: t0 });
    // The busy group's one token, then the quiet groups in send order past its other nine.
    expect(first.map((d) => d.message.groupKey)).toEqual(['busy', 'q1', 'q2']);
    expect(byGroup(await receive(t.db, { queue, max: 10, now: t0 }))).toEqual({ q3: 1 });
  });

  it('counts a FIFO group (one in flight) per delivery, acked or not', async () => {
    const queue = 'group-rate-fifo';
    await makeQueue(t.db, queue, { groupRateLimit: { count: 1, perSeconds: 10 } });
    await sendGrouped(queue, ['g'], 3);
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    const [head] = await receive(t.db, { queue, max: 10, now: t0 });
    expect(head).toBeDefined();
    await ack(t.db, { receipt: head!.receipt });
    // The next message of the group is its head now, but the group's token is spent.
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(t0, 5) })).toHaveLength(0);
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(t0, 10) })).toHaveLength(1);
  });

  it('binds together with the queue rateLimit and maxInFlight, the tighter winning', async () => {
    const queue = 'group-rate-both';
    await makeQueue(t.db, queue, {
      rateLimit: { count: 3, perSeconds: 60 },
      groupRateLimit: { count: 2, perSeconds: 60 },
      groupMaxInFlight: 100,
    });
    await sendGrouped(queue, ['a', 'b'], 5);
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    const first = await receive(t.db, { queue, max: 100, now: t0 });
    // The queue's three tokens, no group beyond its two.
    expect(first).toHaveLength(3);
    expect(Math.max(...Object.values(byGroup(first)))).toBeLessThanOrEqual(2);
    expect(await receive(t.db, { queue, max: 100, now: t0 })).toHaveLength(0);

    // Without the queue's limit, and a cap of 10 far from binding, the groups bind: the four
    // tokens of the two groups less the three taken.
    await configureQueue(t.db, { name: queue, config: { rateLimit: null, maxInFlight: 10 } });
    expect(await receive(t.db, { queue, max: 100, now: t0 })).toHaveLength(1);
    // A cap lower than the groups' tokens binds in turn: an hour later the groups hold four
    // tokens, but four leases are held and the cap of five leaves one slot.
    await configureQueue(t.db, { name: queue, config: { maxInFlight: 5 } });
    expect(await receive(t.db, { queue, max: 100, now: secondsAfter(t0, 3600) })).toHaveLength(1);
  });

  it('applies a changed or removed limit on the next receive', async () => {
    const queue = 'group-rate-change';
    await makeQueue(t.db, queue, {
      groupRateLimit: { count: 1, perSeconds: 60 },
      groupMaxInFlight: 100,
    });
    await sendGrouped(queue, ['a'], 10);
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    expect(await receive(t.db, { queue, max: 10, now: t0 })).toHaveLength(1);
    expect(await receive(t.db, { queue, max: 10, now: t0 })).toHaveLength(0);
    await configureQueue(t.db, { name: queue, config: { groupRateLimit: null } });
    expect(await receive(t.db, { queue, max: 10, now: t0 })).toHaveLength(9);
  });

  it('refuses a count or period out of range with BAD_USER_INPUT and changes nothing', async () => {
    const queue = 'group-rate-bad';
    await makeQueue(t.db, queue, { groupRateLimit: { count: 7, perSeconds: 3 } });
    for (const groupRateLimit of [
      { count: 0, perSeconds: 1 },
      { count: 1.5, perSeconds: 1 },
      { count: 1_000_001, perSeconds: 1 },
      { count: 10, perSeconds: 0 },
      { count: 10, perSeconds: 86_401 },
    ]) {
      await expect(
        configureQueue(t.db, { name: queue, config: { groupRateLimit, maxAttempts: 9 } }),
      ).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    }
    const { rows } = await sql<{ count: number; per: number; max_attempts: number }>`
      SELECT group_rate_limit_count AS count, group_rate_limit_per_seconds AS per, max_attempts
      FROM holdline.queues WHERE name = ${queue}
    `.execute(t.db);
    expect(rows[0]).toEqual({ count: 7, per: 3, max_attempts: 5 });
  });
});

describe('why a message of a limited group waits', () => {
  it('is RATE_LIMITED until its group has a token, and counted so in the queue', async () => {
    const queue = 'group-rate-why';
    await makeQueue(t.db, queue, {
      groupRateLimit: { count: 1, perSeconds: 4 },
      groupMaxInFlight: 100,
    });
    await sendGrouped(queue, ['slow'], 3);
    await sendGrouped(queue, ['other'], 1);
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    const taken = await receive(t.db, { queue, max: 1, now: t0 });
    expect(taken.map((d) => d.message.groupKey)).toEqual(['slow']);
    const { rows } = await sql<{ id: string; group_key: string }>`
      SELECT id, group_key FROM holdline.messages
      WHERE queue = ${queue} AND lease_token IS NULL ORDER BY id
    `.execute(t.db);
    const held = rows.find((r) => r.group_key === 'slow')!;
    const free = rows.find((r) => r.group_key === 'other')!;
    expect(await getMessage(t.db, { id: held.id, now: t0 })).toMatchObject({
      waitingReason: 'RATE_LIMITED',
      nextEligibleAt: secondsAfter(t0, 4),
    });
    expect(await getMessage(t.db, { id: held.id, now: secondsAfter(t0, 4) })).toMatchObject({
      waitingReason: 'READY',
    });
    expect(await getMessage(t.db, { id: free.id, now: t0 })).toMatchObject({
      waitingReason: 'READY',
    });
    // The view judges at the database clock, within a second of t0: both slow ones held.
    const counts = await waitingCounts(t.db, { queue });
    expect(counts).toMatchObject({ rateLimited: 2, ready: 1 });
  });
});

describe('group buckets kept in the table', () => {
  it('are deleted by the housekeeper once full again, and a deleted bucket is a full one', async () => {
    const queue = 'group-rate-prune';
    await makeQueue(t.db, queue, {
      groupRateLimit: { count: 2, perSeconds: 10 },
      groupMaxInFlight: 100,
    });
    await sendGrouped(queue, ['a', 'b'], 5);
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    expect(await receive(t.db, { queue, max: 100, now: t0 })).toHaveLength(4);
    const buckets = async (): Promise<string[]> => {
      const { rows } = await sql<{ group_key: string }>`
        SELECT group_key FROM holdline.group_rate_limit_buckets
        WHERE queue = ${queue} ORDER BY group_key
      `.execute(t.db);
      return rows.map((r) => r.group_key);
    };
    expect(await buckets()).toEqual(['a', 'b']);
    const maintenance = new QueueMaintenance(t.db);
    await maintenance.deleteFullGroupBuckets(secondsAfter(t0, 5));
    expect(await buckets()).toEqual(['a', 'b']);
    await maintenance.deleteFullGroupBuckets(secondsAfter(t0, 10));
    expect(await buckets()).toEqual([]);
    expect(byGroup(await receive(t.db, { queue, max: 100, now: secondsAfter(t0, 10) }))).toEqual({
      a: 2,
      b: 2,
    });
  });
});

describe('groupRateLimit under eager consumers', () => {
  it('lets 8 consumers on 2 engines take 20 per second of each of 3 groups for 5 s', async () => {
    const COUNT = 20;
    const SECONDS = 5;
    const GROUPS = ['g0', 'g1', 'g2'];
    const run = await runRateLimited(t, {
      queue: 'group-rate-eager',
      config: { groupRateLimit: { count: COUNT, perSeconds: 1 }, groupMaxInFlight: 1_000 },
      messages: (i) => ({ payload: { i }, groupKey: GROUPS[i % GROUPS.length] }),
      messageCount: GROUPS.length * COUNT * SECONDS * 2,
      seconds: SECONDS,
      consumers: 8,
      max: 10,
    });
    for (const group of GROUPS) {
      const times = run.deliveredAtMsByGroup.get(group) ?? [];
      const expected = COUNT * (SECONDS - times[0]! / 1000);
      const beyondBurst = times.length - COUNT;
      // Never more than the burst plus the refill of the whole run; most of it (the suite's
      // load on 2 cores slows the consumers down).
      expect(beyondBurst).toBeLessThanOrEqual(COUNT * SECONDS);
      expect(beyondBurst).toBeGreaterThanOrEqual(expected * 0.8);
      // The token bucket's bound, per group: in any second of the database's clock, a full
      // bucket plus a second of refill.
      const leased = run.leasedAtMsByGroup.get(group)!;
      expect(busiestWindow(leased, 1000)).toBeLessThanOrEqual(2 * COUNT);
    }
    // Woken by the next-token timer, not polling: receives stay within a few per delivery.
    expect(run.receives).toBeLessThan(run.deliveredAtMs.length * 4);
  });
});
