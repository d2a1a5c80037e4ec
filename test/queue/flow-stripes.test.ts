/**
 * Striped flow limits (0031): a cap or rate limit of 2,000 or more is split into stripes that
 * concurrent receivers take without waiting for one another, and the stripes together stay
 * exactly at the limit under concurrent receivers on separate connections.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { ackBatch, configureQueue, receive } from '../../src/queue/operations.ts';
import type { Delivery, Executor } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { leasedCount, sampleLeases } from '../helpers/leases.ts';
import { databaseNow, makeQueueWithMessages, secondsAfter } from '../helpers/factories.ts';

/** Concurrent receivers, each on a connection of its own. */
const RECEIVERS = 12;

let t: TestDatabase;
let pool: Kysely<Database>;
beforeAll(async () => {
  t = await createTestDatabase();
  pool = createDatabase(createPool({ connectionString: t.url, max: RECEIVERS }));
});
afterAll(async () => {
  await pool.destroy();
  await t.drop();
});

/** Receives of `max` on one connection until one comes back empty; how many it leased. */
async function receiveUntilEmpty(
  db: Executor,
  params: { queue: string; max: number; now?: Date },
): Promise<number> {
  let leased = 0;
  for (;;) {
    const deliveries = await receive(db, params);
    if (deliveries.length === 0) return leased;
    leased += deliveries.length;
  }
}

/** RECEIVERS concurrent {@link receiveUntilEmpty}, then one more on its own: the total. */
async function drainConcurrently(params: {
  queue: string;
  max: number;
  now?: Date;
}): Promise<number> {
  const each = await Promise.all(
    Array.from({ length: RECEIVERS }, () => receiveUntilEmpty(pool, params)),
  );
  // A receiver gives up when every stripe it could take at once was spent while others held
  // the rest; what they left is taken here, alone.
  return each.reduce((a, b) => a + b, 0) + (await receiveUntilEmpty(pool, params));
}

describe('a striped maxInFlight', () => {
  it('lets a receive lease while another receive of the queue is uncommitted', async () => {
    const queue = 'stripes-no-wait';
    await makeQueueWithMessages(t.db, queue, 3_000, { maxInFlight: 4_000 });
    const first = await t.connect();
    const second = await t.connect();
    try {
      await first.query('BEGIN');
      const held = await first.query(`SELECT id FROM holdline.receive($1, 1000)`, [queue]);
      expect(held.rowCount).toBe(1_000);
      // One lock per queue made this wait for the first's commit (0020); a stripe does not.
      await second.query(`SET lock_timeout = '2s'`);
      const other = await second.query(`SELECT id FROM holdline.receive($1, 1000)`, [queue]);
      expect(other.rowCount).toBe(1_000);
      await first.query('COMMIT');
      expect(await leasedCount(t.db, queue)).toBe(2_000);
    } finally {
      await first.end();
      await second.end();
    }
  });

  it('never lets 12 receivers on separate connections hold more than a cap of 2,500', async () => {
    const queue = 'stripes-cap';
    const CAP = 2_500;
    await makeQueueWithMessages(t.db, queue, 20_000, { maxInFlight: CAP });
    const sampler = await sampleLeases(t, queue);
    const { samples } = sampler;
    let delivered = 0;
    try {
      await Promise.all(
        Array.from({ length: RECEIVERS }, async (_, r) => {
          // Sizes that do not divide a stripe's 1,250 slots, acks that free some of them.
          const max = [1_000, 700, 333][r % 3]!;
          const held: Delivery[] = [];
          for (let round = 0; round < 6; round++) {
            held.push(...(await receive(pool, { queue, max })));
            const freed = held.splice(0, Math.floor(held.length / 2));
            delivered += freed.length;
            if (freed.length > 0) await ackBatch(pool, { receipts: freed.map((d) => d.receipt) });
          }
        }),
      );
    } finally {
      await sampler.stop();
    }
    expect(delivered).toBeGreaterThan(CAP);
    expect(samples.length).toBeGreaterThan(20);
    expect(Math.max(...samples)).toBeLessThanOrEqual(CAP);
    // Every stripe fills: alone, the cap is reached exactly, not one lease beyond it.
    expect(delivered + CAP).toBeLessThan(20_000);
    await receiveUntilEmpty(pool, { queue, max: 1_000 });
    await receiveUntilEmpty(pool, { queue, max: 1 });
    expect(await leasedCount(t.db, queue)).toBe(CAP);
  });

  it('stays within a cap lowered to fewer stripes than its leases were taken under', async () => {
    const queue = 'stripes-merged';
    await makeQueueWithMessages(t.db, queue, 9_000, { maxInFlight: 8_000 });
    const held: Delivery[] = [];
    for (const max of [1_000, 1_000, 1_000, 1_000, 1_000]) {
      held.push(...(await receive(t.db, { queue, max })));
    }
    expect(held).toHaveLength(5_000);
    await configureQueue(t.db, { name: queue, config: { maxInFlight: 2_000 } });
    expect(await receive(t.db, { queue, max: 1_000 })).toHaveLength(0);
    for (let from = 0; from < 3_500; from += 500) {
      await ackBatch(t.db, { receipts: held.slice(from, from + 500).map((d) => d.receipt) });
    }
    expect(await drainConcurrently({ queue, max: 1_000 })).toBeLessThanOrEqual(500);
    expect(await leasedCount(t.db, queue)).toBeLessThanOrEqual(2_000);
  });
});

describe('a striped rateLimit on an injected clock', () => {
  it('gives 12 concurrent receivers exactly the bucket, then exactly its refill', async () => {
    const queue = 'stripes-rate';
    const COUNT = 4_000;
    await makeQueueWithMessages(t.db, queue, 12_000, {
      rateLimit: { count: COUNT, perSeconds: 1 },
    });
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    expect(await drainConcurrently({ queue, max: 1_000, now: t0 })).toBe(COUNT);
    expect(await drainConcurrently({ queue, max: 300, now: secondsAfter(t0, 0.5) })).toBe(
      COUNT / 2,
    );
    // An hour idle fills the stripes to the bucket's size, no further.
    expect(await drainConcurrently({ queue, max: 1_000, now: secondsAfter(t0, 3600) })).toBe(COUNT);
  });

  it('reports RATE_LIMITED only when no stripe holds a whole token', async () => {
    const queue = 'stripes-rate-waiting';
    await makeQueueWithMessages(t.db, queue, 5_000, {
      rateLimit: { count: 2_000, perSeconds: 10 },
    });
    const t0 = secondsAfter(await databaseNow(t.db), 1);
    // Spend one of the two stripes: a receive can still take the other's 1,000.
    expect(await receive(t.db, { queue, max: 1_000, now: t0 })).toHaveLength(1_000);
    const tokens = async (now: Date): Promise<{ tokens: number; next: Date }> => {
      const { rows } = await sql<{ tokens: number; next_token_at: Date }>`
        SELECT tokens, next_token_at FROM holdline.rate_limit_tokens(${queue}, ${now})
      `.execute(t.db);
      return { tokens: rows[0]!.tokens, next: rows[0]!.next_token_at };
    };
    const { rows: waiting } = await sql<{ id: string }>`
      SELECT id FROM holdline.messages WHERE queue = ${queue} AND lease_token IS NULL ORDER BY id DESC LIMIT 1
    `.execute(t.db);
    const reason = async (now: Date): Promise<{ reason: string; next: Date }> => {
      const { rows } = await sql<{ reason: string; next_eligible_at: Date }>`
        SELECT reason, next_eligible_at FROM holdline.waiting_reason(${waiting[0]!.id}, ${now})
      `.execute(t.db);
      return { reason: rows[0]!.reason, next: rows[0]!.next_eligible_at };
    };
    expect((await tokens(t0)).tokens).toBe(1_000);
    expect((await reason(t0)).reason).toBe('READY');
    expect(await receiveUntilEmpty(t.db, { queue, max: 1_000, now: t0 })).toBe(1_000);
    // Both spent: the next whole token of a stripe is due in 1 / (100 per second) = 10 ms.
    const spent = await tokens(t0);
    expect(spent.tokens).toBe(0);
    expect(spent.next.getTime() - t0.getTime()).toBe(10);
    expect(await reason(t0)).toEqual({ reason: 'RATE_LIMITED', next: spent.next });
  });
});
