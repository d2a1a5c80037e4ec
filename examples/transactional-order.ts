/**
 * Transactional outbox: an order row and its "order placed" message commit together or not
 * at all, written three ways side by side (a kysely transaction, a pg client between BEGIN
 * and COMMIT, plain SQL), then consumed in-process.
 *
 *   npm start                                   # in another terminal (or any migrated database)
 *   npx tsx examples/transactional-order.ts     # DATABASE_URL for your own PostgreSQL
 *
 * Without DATABASE_URL it uses the embedded PostgreSQL that `npm start` runs. In your own
 * project, import from 'holdline' instead of '../src/index.ts'.
 */
import { Kysely, PostgresDialect, sql } from 'kysely';
import type { Generated } from 'kysely';
import pg from 'pg';
import { createInProcessClient, isHoldlineError, send } from '../src/index.ts';

/** The shop's own schema: Holdline needs no kysely types of its own in it. */
interface ShopDatabase {
  example_orders: { id: Generated<number>; customer: string; total: string };
}

const QUEUE = 'example-orders';
const connectionString =
  process.env.DATABASE_URL ?? 'postgres://postgres:holdline@127.0.0.1:5433/postgres';
const pool = new pg.Pool({ connectionString });
const db = new Kysely<ShopDatabase>({ dialect: new PostgresDialect({ pool }) });
const holdline = await createInProcessClient({ pool });

await sql`CREATE TABLE IF NOT EXISTS example_orders (
  id serial PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL)`.execute(db);
try {
  await holdline.createQueue(QUEUE);
} catch (error) {
  if (!isHoldlineError(error, 'QUEUE_EXISTS')) throw error;
}
const placed: number[] = [];

// 1. kysely: send() takes the transaction like any other query.
await db.transaction().execute(async (trx) => {
  const order = await trx
    .insertInto('example_orders')
    .values({ customer: 'ada', total: '42.00' })
    .returning('id')
    .executeTakeFirstOrThrow();
  await send(trx, QUEUE, { payload: { orderId: order.id, style: 'kysely' } });
  placed.push(order.id);
});

// 2. pg: send() takes the client on which BEGIN was run.
const client = await pool.connect();
try {
  await client.query('BEGIN');
  const { rows } = await client.query<{ id: number }>(
    `INSERT INTO example_orders (customer, total) VALUES ('grace', 7.50) RETURNING id`,
  );
  await send(client, QUEUE, { payload: { orderId: rows[0]!.id, style: 'pg' } });
  await client.query('COMMIT');
  placed.push(rows[0]!.id);
} catch (error) {
  await client.query('ROLLBACK');
  throw error;
} finally {
  client.release();
}

// 3. Plain SQL: holdline.send() inside any transaction, from any language.
const { rows } = await pool.query<{ id: number }>(
  `WITH o AS (INSERT INTO example_orders (customer, total) VALUES ('linus', 3.14) RETURNING id)
   SELECT id, holdline.send($1, jsonb_build_object('orderId', id, 'style', 'sql')) FROM o`,
  [QUEUE],
);
placed.push(rows[0]!.id);
console.log(`placed orders ${placed.join(', ')}, each with its message in the same transaction`);

// A failed checkout: the rollback takes the message with it.
const before = await holdline.queueStats(QUEUE);
await db
  .transaction()
  .execute(async (trx) => {
    await trx.insertInto('example_orders').values({ customer: 'eve', total: '0' }).execute();
    await send(trx, QUEUE, { payload: { orderId: -1, style: 'rolled back' } });
    throw new Error('card declined');
  })
  .catch((error: unknown) => console.log(`checkout failed (${String(error)}): nothing enqueued`));
const after = await holdline.queueStats(QUEUE);
console.log(`rolled back: queue total ${before?.total} before, ${after?.total} after`);

// Consume the three messages in-process (no HTTP hop), then stop.
const pending = new Set(placed);
await new Promise<void>((resolve) => {
  const worker = holdline.consume<{ orderId: number; style: string }>(QUEUE, (message) => {
    console.log(`shipping order ${message.payload.orderId} (sent with ${message.payload.style})`);
    pending.delete(message.payload.orderId);
    if (pending.size === 0) void worker.stop().then(resolve);
  });
});

await holdline.close();
await db.destroy();
