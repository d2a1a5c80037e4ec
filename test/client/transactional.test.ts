import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HoldlineError, createInProcessClient, publish, send, sendBatch } from '../../src/index.ts';
import type { InProcessClient } from '../../src/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { messageRow, silentLogger } from '../helpers/factories.ts';
import { deferred, within } from './support.ts';

let t: TestDatabase;
let client: InProcessClient;

beforeAll(async () => {
  t = await createTestDatabase();
  await sql`CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL)`.execute(t.db);
  client = await createInProcessClient({
    connectionString: t.url,
    reaper: false,
    logger: silentLogger(),
  });
  await client.createQueue('tx-orders');
});
afterAll(async () => {
  await client.close();
  await t.drop();
});

async function orderExists(id: number): Promise<boolean> {
  const { rows } = await sql<{
    n: number;
  }>`SELECT count(*)::int AS n FROM orders WHERE id = ${id}`.execute(t.db);
  return rows[0]!.n === 1;
}

describe('send inside the caller’s transaction', () => {
  it('commits with a kysely transaction, and leaves nothing when it rolls back', async () => {
    const message = await t.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO orders (id, total) VALUES (1, 10)`.execute(trx);
      return send(trx, 'tx-orders', { payload: { orderId: 1 } });
    });
    expect(await orderExists(1)).toBe(true);
    expect((await messageRow(t.db, message.id))?.payload).toEqual({ orderId: 1 });

    let rolledBackId: string | undefined;
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`INSERT INTO orders (id, total) VALUES (2, 20)`.execute(trx);
        rolledBackId = (await send(trx, 'tx-orders', { payload: { orderId: 2 } })).id;
        throw new Error('payment declined');
      }),
    ).rejects.toThrow('payment declined');
    expect(rolledBackId).toBeDefined();
    expect(await orderExists(2)).toBe(false);
    expect(await messageRow(t.db, rolledBackId!)).toBeUndefined();
  });

  it('commits with a pg PoolClient between BEGIN and COMMIT, and not after ROLLBACK', async () => {
    const pool = new pg.Pool({ connectionString: t.url, max: 2 });
    try {
      const pgClient = await pool.connect();
      try {
        await pgClient.query('BEGIN');
        await pgClient.query('INSERT INTO orders (id, total) VALUES (3, 30)');
        const [committed] = await sendBatch(pgClient, 'tx-orders', [{ payload: { orderId: 3 } }]);
        // Not visible outside the transaction before COMMIT.
        expect(await messageRow(t.db, committed!.id)).toBeUndefined();
        await pgClient.query('COMMIT');
        expect(await messageRow(t.db, committed!.id)).toBeDefined();

        await pgClient.query('BEGIN');
        await pgClient.query('INSERT INTO orders (id, total) VALUES (4, 40)');
        const rolledBack = await send(pgClient, 'tx-orders', { payload: { orderId: 4 } });
        await pgClient.query('ROLLBACK');
        expect(await messageRow(t.db, rolledBack.id)).toBeUndefined();
        expect(await orderExists(4)).toBe(false);
      } finally {
        pgClient.release();
      }
    } finally {
      await pool.end();
    }
  });

  it('commits with plain SQL holdline.send in any transaction', async () => {
    const pgClient = await t.connect();
    try {
      await pgClient.query('BEGIN');
      await pgClient.query('INSERT INTO orders (id, total) VALUES (5, 50)');
      const { rows } = await pgClient.query<{ id: string }>(
        `SELECT holdline.send('tx-orders', $1::jsonb) AS id`,
        [JSON.stringify({ orderId: 5 })],
      );
      await pgClient.query('COMMIT');
      expect((await messageRow(t.db, rows[0]!.id))?.payload).toEqual({ orderId: 5 });
    } finally {
      await pgClient.end();
    }
  });

  it('fails with QUEUE_NOT_FOUND for a missing queue, aborting the transaction', async () => {
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`INSERT INTO orders (id, total) VALUES (6, 60)`.execute(trx);
        await send(trx, 'tx-no-such-queue', { payload: {} });
      }),
    ).rejects.toMatchObject({ name: 'HoldlineError', code: 'QUEUE_NOT_FOUND' });
    expect(await orderExists(6)).toBe(false);
  });

  it('publishes to the bound queues in the transaction', async () => {
    await client.createQueue('tx-audit');
    await client.bindQueue('tx-audit', 'orders.#');
    const copies = await t.db
      .transaction()
      .execute((trx) => publish(trx, 'orders.paid', { payload: { orderId: 7 } }));
    expect(copies.map((m) => m.queue)).toEqual(['tx-audit']);
  });

  it('wakes a waiting in-process worker on commit, through within(tx)', async () => {
    const queue = 'tx-wakeup';
    await client.createQueue(queue);
    const arrived = deferred<unknown>();
    const worker = client.consume(queue, (message) => arrived.resolve(message.payload));
    // Let the worker start its long poll.
    await sleep(200);
    const pgClient = await t.connect();
    try {
      await pgClient.query('BEGIN');
      await client.within(pgClient).send(queue, { payload: { rolledBack: true } });
      await pgClient.query('ROLLBACK');
      await pgClient.query('BEGIN');
      await client.within(pgClient).send(queue, { payload: { committed: true } });
      await pgClient.query('COMMIT');
    } finally {
      await pgClient.end();
    }
    expect(await within(2_000, 'wake-up', arrived.promise)).toEqual({ committed: true });
    await worker.stop();
  });
});

describe('createInProcessClient', () => {
  it('leaves a pool it was given open after close()', async () => {
    const pool = new pg.Pool({ connectionString: t.url, max: 2 });
    try {
      const own = await createInProcessClient({ pool, reaper: false, logger: silentLogger() });
      expect(await own.getQueue('tx-orders')).toMatchObject({ name: 'tx-orders' });
      await own.close();
      const { rows } = await pool.query<{ one: number }>('SELECT 1 AS one');
      expect(rows[0]!.one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('fails with UNAVAILABLE when PostgreSQL cannot be reached', async () => {
    const error = await createInProcessClient({
      connectionString: 'postgres://postgres@127.0.0.1:1/none',
      logger: silentLogger(),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HoldlineError);
    expect(error).toMatchObject({ code: 'UNAVAILABLE' });
  });
});
