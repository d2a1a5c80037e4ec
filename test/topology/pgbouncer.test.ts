/**
 * Behind PgBouncer in transaction mode (Debian's pgbouncer 1.18, started here): the service
 * and the in-process client run their query pools through it, with LISTEN and the reaper's
 * leader lock on a direct connection, and prepared statements off (PgBouncer before 1.21
 * cannot carry them in transaction mode). Every statement of the pool then lands on whatever
 * server connection PgBouncer hands out for that transaction, so anything that leaned on
 * session state would break here: the flows below are the queue's whole life cycle.
 */
import { sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/server/app.ts';
import type { App } from '../../src/server/app.ts';
import { loadConfig } from '../../src/server/config.ts';
import { createInProcessClient, send } from '../../src/index.ts';
import type { InProcessClient } from '../../src/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';
import { pollUntil } from '../helpers/notifications.ts';
import { startPgBouncer } from '../helpers/pgbouncer.ts';
import type { PgBouncer } from '../helpers/pgbouncer.ts';
import { freePort } from '../reliability/scenario.ts';

/** Server connections PgBouncer keeps for the test database: fewer than the clients' pools. */
const POOL_SIZE = 4;

let t: TestDatabase;
let bouncer: PgBouncer;
let app: App;
let client: InProcessClient;
let pooledUrl: string;

beforeAll(async () => {
  t = await createTestDatabase();
  bouncer = await startPgBouncer({
    serverUrl: t.url,
    port: await freePort(),
    poolSize: POOL_SIZE,
  });
  pooledUrl = bouncer.url(t.name);
  const config = {
    ...loadConfig({
      PORT: '0',
      PREPARED_STATEMENTS: 'false',
      POOL_MAX: '16',
      // Long enough that a long poll answered in time was woken, not polled.
      POLL_INTERVAL_MS: '30000',
      REAPER_INTERVAL_MS: '100',
    }),
    databaseUrl: pooledUrl,
  };
  app = createApp({
    config,
    logger: pino({ level: 'silent' }),
    databaseUrl: pooledUrl,
    listenDatabaseUrl: t.url,
  });
  await app.start();
  client = await createInProcessClient({
    connectionString: pooledUrl,
    listenConnectionString: t.url,
    preparedStatements: false,
    poolMax: 12,
    pollIntervalMs: 30_000,
    reaper: false,
    logger: pino({ level: 'silent' }),
  });
}, 60_000);

afterAll(async () => {
  await client?.close();
  await app?.stop();
  await bouncer?.stop();
  await t?.drop();
});

/** A GraphQL request to the service that must succeed. */
async function ok<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await graphqlRequest<T>(app.url(), query, variables);
  expect(response.errors).toBeUndefined();
  return response.data!;
}

/** Transactions PgBouncer has carried for the test database so far. */
async function pooledTransactions(): Promise<number> {
  const rows = await bouncer.admin<{ database: string; total_xact_count: string }>('SHOW STATS');
  return Number(rows.find((r) => r.database === t.name)?.total_xact_count ?? 0);
}

describe('the service with its pool behind PgBouncer in transaction mode', () => {
  it('sends, leases, acks, nacks and redelivers, every statement through the pooler', async () => {
    const before = await pooledTransactions();
    await ok(`mutation { createQueue(name: "pooled", config: { backoffInitialSeconds: 0,
      backoffMaxSeconds: 0 }) { name } }`);
    const sent = await ok<{ sendBatch: { id: string }[] }>(
      `mutation { sendBatch(queue: "pooled", messages: [{ payload: 1 }, { payload: 2 },
         { payload: 3, dedupKey: "d" }, { payload: 4, dedupKey: "d" }]) { id } }`,
    );
    // The two sends with one dedup key are one message.
    expect(new Set(sent.sendBatch.map((m) => m.id)).size).toBe(3);
    const first = await ok<{ receive: { receipt: string; message: { payload: number } }[] }>(
      `mutation { receive(queue: "pooled", max: 10) { receipt message { payload } } }`,
    );
    expect(first.receive.map((d) => d.message.payload)).toEqual([1, 2, 3]);
    await ok(`mutation($r: String!) { ack(receipt: $r) }`, { r: first.receive[0]!.receipt });
    await ok(`mutation($r: [String!]!) { ackBatch(receipts: $r) }`, {
      r: [first.receive[1]!.receipt],
    });
    await ok(`mutation($r: String!) { nack(receipt: $r) }`, {
      r: first.receive[2]!.receipt,
    });
    const again = await ok<{ receive: { message: { payload: number; attempts: number } }[] }>(
      `mutation { receive(queue: "pooled", max: 10) { message { payload attempts } } }`,
    );
    expect(again.receive).toEqual([{ message: { payload: 3, attempts: 2 } }]);
    expect(await pooledTransactions()).toBeGreaterThanOrEqual(before + 6);
  });

  it('answers 64 concurrent sends and 16 concurrent receives over 4 server connections', async () => {
    await ok(`mutation { createQueue(name: "pooled-burst") { name } }`);
    await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        ok(`mutation($p: JSON!) { send(queue: "pooled-burst", message: { payload: $p }) { id } }`, {
          p: i,
        }),
      ),
    );
    const received = await Promise.all(
      Array.from({ length: 16 }, () =>
        ok<{ receive: { message: { payload: number } }[] }>(
          `mutation { receive(queue: "pooled-burst", max: 4) { message { payload } } }`,
        ),
      ),
    );
    const payloads = received.flatMap((r) => r.receive.map((d) => d.message.payload));
    expect(payloads.sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });

  it('wakes a long poll when a plain-SQL send commits through the pooler', async () => {
    await ok(`mutation { createQueue(name: "pooled-wake") { name } }`);
    const polling = ok<{ receive: { message: { payload: string } }[] }>(
      `mutation { receive(queue: "pooled-wake", waitSeconds: 20) { message { payload } } }`,
    );
    // The long poll has registered as idle (on the direct LISTEN connection).
    await pollUntil('the long poll is waiting', async () => {
      const { rows } = await sql`
        SELECT 1 FROM holdline.waiting_consumers WHERE queue = 'pooled-wake'`.execute(t.db);
      return rows.length > 0;
    });
    const producer = new pg.Client({ connectionString: pooledUrl });
    await producer.connect();
    const sentAt = Date.now();
    try {
      await producer.query('BEGIN');
      await producer.query(`SELECT holdline.send('pooled-wake', '"hello"'::jsonb)`);
      await producer.query('COMMIT');
    } finally {
      await producer.end();
    }
    const woken = await polling;
    expect(woken.receive.map((d) => d.message.payload)).toEqual(['hello']);
    // Well inside the 30 s poll interval: woken by NOTIFY, not found by polling.
    expect(Date.now() - sentAt).toBeLessThan(10_000);
  });

  it('enforces a concurrency cap and a rate limit (transaction-scoped locks)', async () => {
    await ok(`mutation { createQueue(name: "pooled-limits", config: { maxInFlight: 2,
      rateLimit: { count: 3, perSeconds: 3600 } }) { name } }`);
    await ok(`mutation { sendBatch(queue: "pooled-limits", messages: [{ payload: 1 },
      { payload: 2 }, { payload: 3 }, { payload: 4 }, { payload: 5 }]) { id } }`);
    const receive = (): Promise<{ receive: { receipt: string }[] }> =>
      ok(`mutation { receive(queue: "pooled-limits", max: 10) { receipt } }`);
    const capped = await receive();
    expect(capped.receive).toHaveLength(2);
    expect((await receive()).receive).toHaveLength(0);
    await ok(`mutation($r: [String!]!) { ackBatch(receipts: $r) }`, {
      r: capped.receive.map((d) => d.receipt),
    });
    // Two slots free, one token left of three.
    expect((await receive()).receive).toHaveLength(1);
  });

  it('redelivers an expired lease: the reaper leads on its direct connection', async () => {
    await ok(`mutation { createQueue(name: "pooled-expiry", config: { visibilityTimeout: 1,
      backoffInitialSeconds: 0, backoffMaxSeconds: 0 }) { name } }`);
    await ok(`mutation { send(queue: "pooled-expiry", message: { payload: "x" }) { id } }`);
    const leased = await ok<{ receive: unknown[] }>(
      `mutation { receive(queue: "pooled-expiry") { receipt } }`,
    );
    expect(leased.receive).toHaveLength(1);
    const redelivered = await ok<{ receive: { message: { attempts: number } }[] }>(
      `mutation { receive(queue: "pooled-expiry", waitSeconds: 10) { message { attempts } } }`,
    );
    expect(redelivered.receive).toEqual([{ message: { attempts: 2 } }]);
  });
});

describe('the in-process client with its pool behind PgBouncer', () => {
  it('sends inside the caller’s transaction through the pooler: committed or not at all', async () => {
    await client.createQueue('pooled-tx');
    const pool = new pg.Pool({ connectionString: pooledUrl, max: 2 });
    try {
      const tx = await pool.connect();
      try {
        await tx.query('BEGIN');
        await send(tx, 'pooled-tx', { payload: 'kept' });
        await tx.query('COMMIT');
        await tx.query('BEGIN');
        await send(tx, 'pooled-tx', { payload: 'rolled back' });
        await tx.query('ROLLBACK');
      } finally {
        tx.release();
      }
    } finally {
      await pool.end();
    }
    const { rows } = await sql<{ payload: string }>`
      SELECT payload FROM holdline.messages WHERE queue = 'pooled-tx'`.execute(t.db);
    expect(rows.map((r) => r.payload)).toEqual(['kept']);
  });

  it('runs a worker at concurrency 16 over 4 server connections: every message handled once', async () => {
    const COUNT = 500;
    await client.createQueue('pooled-work');
    for (let i = 0; i < COUNT; i += 100) {
      await client.sendBatch(
        'pooled-work',
        Array.from({ length: 100 }, (_, k) => ({ payload: i + k })),
      );
    }
    const seen = new Map<number, number>();
    let resolveAll!: () => void;
    const all = new Promise<void>((resolve) => (resolveAll = resolve));
    const worker = client.consume<number>(
      'pooled-work',
      async (message) => {
        seen.set(message.payload, (seen.get(message.payload) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (seen.size === COUNT) resolveAll();
      },
      { concurrency: 16 },
    );
    try {
      await all;
    } finally {
      await worker.stop();
    }
    expect(seen.size).toBe(COUNT);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    const stats = await client.queueStats('pooled-work');
    expect(stats).toMatchObject({ ready: 0, leased: 0 });
    // PgBouncer never opened more server connections for the database than its pool.
    const pools = await bouncer.admin<{ database: string; sv_active: string; sv_idle: string }>(
      'SHOW POOLS',
    );
    const pool = pools.find((p) => p.database === t.name)!;
    expect(Number(pool.sv_active) + Number(pool.sv_idle)).toBeLessThanOrEqual(POOL_SIZE);
  });
});
