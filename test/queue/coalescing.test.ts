import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueEngine } from '../../src/queue/index.ts';
import type { Message } from '../../src/queue/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import {
  makeQueue,
  makeQueueWithMessages,
  messageRow,
  silentLogger,
} from '../helpers/factories.ts';

let t: TestDatabase;
let engine: QueueEngine;
let engineDb: Kysely<Database>;
/** The statement texts the engine's connections have run, in order. */
const statements: string[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  const pool = createPool({ connectionString: t.url, max: 10 });
  // Counts what the engine sends to PostgreSQL: how many statements for how many callers.
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const first = args[0] as string | { text: string };
      statements.push(typeof first === 'string' ? first : first.text);
      return query(...args);
    };
  });
  engineDb = createDatabase(pool);
  engine = new QueueEngine({ db: engineDb, logger: silentLogger() });
  engine.start();
});
afterAll(async () => {
  await engine.stop();
  await engineDb.destroy();
  await t.drop();
});

/** How many statements calling holdline.<name>…( (ack: ack and ack_batch) ran while `work` did. */
async function counting(name: string, work: () => Promise<unknown>): Promise<number> {
  const from = statements.length;
  await work();
  return statements.slice(from).filter((text) => new RegExp(`holdline\\.${name}\\w*\\(`).test(text))
    .length;
}

const LEASE_LOST = { name: 'QueueError', code: 'LEASE_LOST' };

describe('single acks arriving together', () => {
  it('share statements, each caller answered for its own receipt, a stale one LEASE_LOST', async () => {
    const queue = 'coalesce-ack';
    await makeQueueWithMessages(t.db, queue, 60);
    const deliveries = await engine.receive({ queue, max: 60, visibilityTimeoutSeconds: 300 });
    expect(deliveries).toHaveLength(60);
    const stale = `${deliveries[0]!.message.id}.00000000-0000-4000-8000-000000000000`;
    let outcomes: PromiseSettledResult<unknown>[] = [];
    const acks = await counting('ack', async () => {
      outcomes = await Promise.allSettled([
        engine.ack(stale),
        ...deliveries.map((d) => engine.ack(d.receipt)),
      ]);
    });
    expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: LEASE_LOST });
    expect(outcomes.slice(1).every((o) => o.status === 'fulfilled')).toBe(true);
    for (const d of deliveries) expect(await messageRow(t.db, d.message.id)).toBeUndefined();
    // 61 callers, two lanes: far fewer statements than callers (holdline.ack alone, else
    // holdline.ack_batch; the stale receipt's has no lease to check, nothing scoped).
    expect(acks).toBeGreaterThan(0);
    expect(acks).toBeLessThan(20);
  });

  it('ack one receipt once when it is acked twice at the same moment', async () => {
    const queue = 'coalesce-ack-twice';
    await makeQueueWithMessages(t.db, queue, 3);
    const [first, ...others] = await engine.receive({ queue, max: 3 });
    const outcomes = await Promise.allSettled([
      ...others.map((d) => engine.ack(d.receipt)),
      engine.ack(first!.receipt),
      engine.ack(first!.receipt),
    ]);
    const forFirst = outcomes.slice(2);
    expect(forFirst.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(forFirst.filter((o) => o.status === 'rejected')[0]).toMatchObject({
      reason: LEASE_LOST,
    });
    expect(outcomes.slice(0, 2).every((o) => o.status === 'fulfilled')).toBe(true);
  });

  it("keep to the caller's queues: another queue's delivery is refused by the hook and stays leased", async () => {
    await makeQueueWithMessages(t.db, 'scoped_a.x', 2);
    await makeQueueWithMessages(t.db, 'scopedbax', 1);
    const mine = await engine.receive({ queue: 'scoped_a.x', max: 2 });
    const [theirs] = await engine.receive({ queue: 'scopedbax', max: 1 });
    const refused = new Error('FORBIDDEN by the hook');
    const options = {
      // `_` is a literal underscore here, never LIKE's any-one-character.
      queuePatterns: ['scoped_a*'],
      authorize: (queues: ReadonlySet<string>) => {
        for (const q of queues) if (!q.startsWith('scoped_a')) throw refused;
      },
    };
    const outcomes = await Promise.allSettled([
      engine.ack(theirs!.receipt, options),
      ...mine.map((d) => engine.ack(d.receipt, options)),
    ]);
    expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: refused });
    expect(outcomes.slice(1).every((o) => o.status === 'fulfilled')).toBe(true);
    expect((await messageRow(t.db, theirs!.message.id))?.lease_token).not.toBeNull();
    // A lost lease under the same scope is LEASE_LOST, not refused.
    await expect(engine.ack(mine[0]!.receipt, options)).rejects.toMatchObject(LEASE_LOST);
  });
});

describe('single sends arriving together', () => {
  it('share statements, each caller getting its own message in the queue', async () => {
    const queue = 'coalesce-send';
    await makeQueue(t.db, queue);
    let sent: Message[] = [];
    const sends = await counting('send', async () => {
      sent = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          engine.send(queue, { payload: { i }, priority: i % 3 }),
        ),
      );
    });
    expect(new Set(sent.map((m) => m.id)).size).toBe(50);
    for (const [i, m] of sent.entries()) {
      expect(m).toMatchObject({ queue, payload: { i }, priority: i % 3, state: 'READY' });
      expect((await messageRow(t.db, m.id))?.payload).toEqual({ i });
    }
    // holdline.send_at alone, else holdline.send_many: far fewer than the 50 callers.
    expect(sends).toBeGreaterThan(0);
    expect(sends).toBeLessThan(20);
  });

  it("fail only the send whose payload is over the queue's limit; the others go in", async () => {
    const queue = 'coalesce-send-limit';
    await makeQueue(t.db, queue, { maxPayloadBytes: 64 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        engine.send(queue, { payload: i === 5 ? { big: 'x'.repeat(200) } : { i } }),
      ),
    );
    expect(outcomes[5]).toMatchObject({
      status: 'rejected',
      reason: { code: 'PAYLOAD_TOO_LARGE' },
    });
    const ok = outcomes.filter((o) => o.status === 'fulfilled');
    expect(ok).toHaveLength(11);
    expect(await engine.queueStats(queue)).toMatchObject({ ready: 11 });
  });

  it('answer every send to a missing queue with QUEUE_NOT_FOUND, writing nothing', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => engine.send('coalesce-missing', { payload: { i } })),
    );
    for (const o of outcomes) {
      expect(o).toMatchObject({ status: 'rejected', reason: { code: 'QUEUE_NOT_FOUND' } });
    }
  });
});
