/**
 * Rate limits (queue setting rateLimit): a token bucket in PostgreSQL that every receive of
 * the queue draws from, on an injected clock and under eager concurrent consumers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureQueue, receive } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import {
  databaseNow,
  makeQueue,
  makeQueueWithMessages,
  secondsAfter,
} from '../helpers/factories.ts';
import { busiestWindow, runRateLimited } from '../helpers/rate-limit-run.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('rateLimit on an injected clock', () => {
  it('delivers a full bucket at once, then one token per count/perSeconds', async () => {
    const queue = 'rate-clock';
    await makeQueueWithMessages(t.db, queue, 50, { rateLimit: { count: 5, perSeconds: 1 } });
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    expect(await receive(t.db, { queue, max: 10, now: t0 })).toHaveLength(5);
    expect(await receive(t.db, { queue, max: 10, now: t0 })).toHaveLength(0);
    // 0.4 s later: two tokens.
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(t0, 0.4) })).toHaveLength(2);
    // 1 s after the start: three more (0.6 s at 5 per second).
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(t0, 1) })).toHaveLength(3);
    // An hour idle fills the bucket to its size, no further.
    expect(await receive(t.db, { queue, max: 100, now: secondsAfter(t0, 3600) })).toHaveLength(5);
  });

  it('applies a changed or removed limit on the next receive', async () => {
    const queue = 'rate-change';
    await makeQueueWithMessages(t.db, queue, 30, { rateLimit: { count: 2, perSeconds: 60 } });
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    expect(await receive(t.db, { queue, max: 10, now: t0 })).toHaveLength(2);
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(t0, 1) })).toHaveLength(0);
    await configureQueue(t.db, { name: queue, config: { rateLimit: null } });
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(t0, 1) })).toHaveLength(10);
  });

  it('refuses a count or period out of range with BAD_USER_INPUT', async () => {
    await makeQueue(t.db, 'rate-bad');
    for (const rateLimit of [
      { count: 0, perSeconds: 1 },
      { count: -1, perSeconds: 1 },
      { count: 1.5, perSeconds: 1 },
      { count: 1_000_001, perSeconds: 1 },
      { count: 10, perSeconds: 0 },
      { count: 10, perSeconds: 86_401 },
    ]) {
      await expect(
        configureQueue(t.db, { name: 'rate-bad', config: { rateLimit, maxAttempts: 9 } }),
      ).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    }
  });
});

describe('rateLimit under eager consumers', () => {
  it('lets 8 consumers on 2 engines take 50 per second for 6 s, bursting no more than the bucket', async () => {
    const COUNT = 50;
    const SECONDS = 6;
    const run = await runRateLimited(t, {
      queue: 'rate-eager',
      config: { rateLimit: { count: COUNT, perSeconds: 1 } },
      // Far more than the limit lets through in the run.
      messageCount: Math.ceil(COUNT * SECONDS * 1.5) + COUNT,
      seconds: SECONDS,
      consumers: 8,
      max: 10,
    });
    // The bucket starts full (COUNT), then refills at COUNT per second from the first
    // delivery (the consumers' first connections take a moment).
    const expected = COUNT * (SECONDS - run.deliveredAtMs[0]! / 1000);
    const beyondBurst = run.deliveredAtMs.length - COUNT;
    // Never more than the refill of the whole run; most of it from the first delivery (the
    // whole suite's load on 2 cores slows the consumers down; test:reliability's 30 s run
    // holds the issue's ±3% on its own).
    expect(beyondBurst).toBeLessThanOrEqual(COUNT * SECONDS);
    expect(beyondBurst).toBeGreaterThanOrEqual(expected * 0.85);
    // The token bucket's bound: in any second, at most a full bucket plus a second of refill,
    // by the database's clock. A lease records its transaction's start, which precedes its
    // charge by its wait for the bucket's lock (milliseconds; more on a loaded machine),
    // hence the tenth of a bucket of slack.
    expect(busiestWindow(run.leasedAtMs, 1000)).toBeLessThanOrEqual(2 * COUNT + COUNT / 10);
    // Woken by the next-token timer, not polling: receives stay within a few per delivery.
    expect(run.receives).toBeLessThan(run.deliveredAtMs.length * 4);
  });
});
