/**
 * The rate-limit run (npm run test:reliability): rateLimit 100 per second for 30 s
 * with 8 eager consumers on 2 engines: the deliveries beyond the initial bucket come within
 * ±3% of 3,000, and no burst exceeds the bucket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { busiestWindow, runRateLimited } from '../helpers/rate-limit-run.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('rateLimit 100/s for 30 s', () => {
  it('delivers 3,000 within 3% beyond the initial bucket, with no burst above it', async () => {
    const COUNT = 100;
    const SECONDS = 30;
    const run = await runRateLimited(t, {
      queue: 'rate-30s',
      config: { rateLimit: { count: COUNT, perSeconds: 1 } },
      // Far more than the limit lets through in the run.
      messageCount: Math.ceil(COUNT * SECONDS * 1.5) + COUNT,
      seconds: SECONDS,
      consumers: 8,
      max: 10,
    });
    const delivered = run.deliveredAtMs.length;
    const beyondBurst = delivered - COUNT;
    // The bucket refills from the first delivery on (the consumers' first connections take a
    // moment): the ±3% is of what it refilled in that time, 3,000 less a few tokens.
    const expected = COUNT * (SECONDS - run.deliveredAtMs[0]! / 1000);
    console.log(
      JSON.stringify({
        scenario: 'rate-limit-100-per-s',
        delivered,
        beyondBurst,
        expected,
        firstDeliveryMs: run.deliveredAtMs[0],
        receives: run.receives,
      }),
    );
    expect(Math.abs(beyondBurst - COUNT * SECONDS)).toBeLessThanOrEqual(COUNT * SECONDS * 0.03);
    expect(Math.abs(beyondBurst - expected)).toBeLessThanOrEqual(expected * 0.03);
    // The token bucket's bound: in any second, at most a full bucket plus a second of refill,
    // by the database's clock. A lease records its transaction's start, which precedes its
    // charge by its wait for the bucket's lock (milliseconds; more on a loaded machine),
    // hence the tenth of a bucket of slack.
    expect(busiestWindow(run.leasedAtMs, 1000)).toBeLessThanOrEqual(2 * COUNT + COUNT / 10);
  });
});
