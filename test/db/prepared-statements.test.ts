import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInProcessClient } from '../../src/index.ts';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import {
  ack,
  ackBatch,
  extendLease,
  nack,
  receive,
  send,
  sendBatch,
} from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { makeQueue } from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await makeQueue(t.db, 'prepared');
});
afterAll(async () => {
  await t.drop();
});

/** A Kysely over a one-connection pool, so every statement shares one server session. */
async function withOneConnection<T>(
  options: { preparedStatements: boolean },
  work: (db: Kysely<Database>) => Promise<T>,
): Promise<T> {
  const db = createDatabase(createPool({ connectionString: t.url, max: 1 }), options);
  try {
    return await work(db);
  } finally {
    await db.destroy();
  }
}

interface PreparedStatement {
  name: string;
  statement: string;
  executions: number;
}

/** The session's named prepared statements (pg_prepared_statements, PostgreSQL 14+). */
async function preparedStatements(db: Kysely<Database>): Promise<PreparedStatement[]> {
  const { rows } = await sql<PreparedStatement>`
    SELECT name, statement, (generic_plans + custom_plans)::integer AS executions
    FROM pg_prepared_statements ORDER BY name
  `.execute(db);
  return rows;
}

async function backendPid(db: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db);
  return rows[0]!.pid;
}

/** Receives and acks everything in the test queue; the payloads, in delivery order. */
async function ackAll(): Promise<unknown[]> {
  const payloads: unknown[] = [];
  for (;;) {
    const [delivery] = await receive(t.db, { queue: 'prepared' });
    if (delivery === undefined) return payloads;
    payloads.push(delivery.message.payload);
    await ack(t.db, { receipt: delivery.receipt });
  }
}

/** Sends, receives and settles one message each way the engine can. */
async function runHotStatements(db: Kysely<Database>): Promise<void> {
  await send(db, { queue: 'prepared', message: { payload: { step: 'send' } } });
  await sendBatch(db, { queue: 'prepared', messages: [{ payload: 1 }, { payload: 2 }] });
  const [first, second, third] = await receive(db, { queue: 'prepared', max: 3 });
  await extendLease(db, { receipt: first!.receipt, seconds: 60 });
  await ack(db, { receipt: first!.receipt });
  await ackBatch(db, { receipts: [second!.receipt] });
  await nack(db, { receipt: third!.receipt, delaySeconds: 0 });
  const [again] = await receive(db, { queue: 'prepared' });
  await ack(db, { receipt: again!.receipt });
}

describe('prepared statements', () => {
  it("prepares each of the engine's hot statements once per connection and reuses it", async () => {
    await withOneConnection({ preparedStatements: true }, async (db) => {
      await runHotStatements(db);
      const first = await preparedStatements(db);
      // send_at, send_many, receive, extend, ack, ackBatch, nack: one each.
      expect(first).toHaveLength(7);
      for (const statement of first) expect(statement.name).toMatch(/^holdline_[0-9a-f]{24}$/);
      const texts = first.map((s) => s.statement).join('\n');
      for (const fragment of [
        'holdline.send_at(',
        'holdline.send_many(',
        'holdline.receive(',
        'holdline.nack(',
        'holdline.extend_lease(',
        'holdline.ack(',
        'holdline.ack_batch(',
      ]) {
        expect(texts).toContain(fragment);
      }

      await runHotStatements(db);
      const second = await preparedStatements(db);
      // Same statements, not new ones, each run again.
      expect(second.map((s) => s.name)).toEqual(first.map((s) => s.name));
      const sendAt = (list: PreparedStatement[]) =>
        list.find((s) => s.statement.includes('holdline.send_at('))!.executions;
      expect(sendAt(second)).toBe(sendAt(first) + 1);
    });
  });

  it('prepares nothing when turned off', async () => {
    await withOneConnection({ preparedStatements: false }, async (db) => {
      await runHotStatements(db);
      expect(await preparedStatements(db)).toEqual([]);
    });
  });

  it("runs unprepared on a caller's own connection, inside the caller's transaction", async () => {
    const pool = new pg.Pool({ connectionString: t.url, max: 1 });
    const callers = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      await callers.transaction().execute(async (trx) => {
        await send(trx, { queue: 'prepared', message: { payload: { step: 'in trx' } } });
      });
      expect(await preparedStatements(callers)).toEqual([]);
    } finally {
      await callers.destroy();
    }
    expect(await ackAll()).toEqual([{ step: 'in trx' }]);
  });

  it('replaces a connection whose prepared statements were dropped under it', async () => {
    await withOneConnection({ preparedStatements: true }, async (db) => {
      await send(db, { queue: 'prepared', message: { payload: { step: 'prepares' } } });
      const before = await backendPid(db);
      // What a pooler in transaction mode does between clients: pg still believes the
      // statement exists on this session.
      await sql`DEALLOCATE ALL`.execute(db);

      await expect(
        send(db, { queue: 'prepared', message: { payload: { step: 'lost' } } }),
      ).rejects.toThrow(/prepared statement .* does not exist/);
      // The session was closed on release; the next send runs on a new one and prepares again.
      await send(db, { queue: 'prepared', message: { payload: { step: 'after' } } });
      expect(await backendPid(db)).not.toBe(before);
      expect((await preparedStatements(db)).length).toBe(1);
    });
    expect(await ackAll()).toEqual([{ step: 'prepares' }, { step: 'after' }]);
  });

  it.each([
    [true, 'prepares'],
    [false, 'prepares nothing'],
  ])(
    'createInProcessClient({ preparedStatements: %s }) %s on the pool it is given',
    async (preparedStatements) => {
      const pool = new pg.Pool({ connectionString: t.url, max: 1 });
      const client = await createInProcessClient({
        pool,
        listenConnectionString: t.url,
        reaper: false,
        preparedStatements,
      });
      try {
        await client.send('prepared', { payload: { step: 'client' } });
        const [delivery] = await client.receive('prepared');
        expect(await client.ack(delivery!.receipt)).toBe(true);
        const { rows } = await pool.query<{ n: number }>(
          'SELECT count(*)::integer AS n FROM pg_prepared_statements',
        );
        if (preparedStatements) expect(rows[0]!.n).toBeGreaterThanOrEqual(3);
        else expect(rows[0]!.n).toBe(0);
      } finally {
        await client.close();
        await pool.end();
      }
    },
  );

  it('replaces a connection whose prepared statement changed result type under it', async () => {
    const { rows } = await sql<{ definition: string }>`
      SELECT pg_get_functiondef('holdline.send_at(text, jsonb, timestamptz, integer, text, text, jsonb)'::regprocedure) AS definition
    `.execute(t.db);
    const original = rows[0]!.definition;
    try {
      await withOneConnection({ preparedStatements: true }, async (db) => {
        await send(db, { queue: 'prepared', message: { payload: { step: 'before' } } });
        const before = await backendPid(db);
        // What a migration that changes send_at's result does to a running service.
        await sql
          .raw(
            `DROP FUNCTION holdline.send_at(text, jsonb, timestamptz, integer, text, text, jsonb);
             ${original.replace('RETURNS bigint', 'RETURNS numeric')}`,
          )
          .execute(t.db);

        await expect(
          send(db, { queue: 'prepared', message: { payload: { step: 'lost' } } }),
        ).rejects.toThrow(/cached plan must not change result type/);
        await send(db, { queue: 'prepared', message: { payload: { step: 'after' } } });
        expect(await backendPid(db)).not.toBe(before);
      });
    } finally {
      await sql
        .raw(
          `DROP FUNCTION IF EXISTS holdline.send_at(text, jsonb, timestamptz, integer, text, text, jsonb);
           ${original}`,
        )
        .execute(t.db);
    }
    expect(await ackAll()).toEqual([{ step: 'before' }, { step: 'after' }]);
  });
});
