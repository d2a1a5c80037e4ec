import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueue, receive, send, sendBatch } from '../../src/queue/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('send', () => {
  it('enqueues a ready message that receive then leases', async () => {
    await createQueue(t.db, { name: 'send-basic' });
    const sent = await send(t.db, { queue: 'send-basic', message: { payload: { id: 1 } } });
    expect(sent).toMatchObject({
      queue: 'send-basic',
      payload: { id: 1 },
      attempts: 0,
      state: 'READY',
    });
    const [delivery] = await receive(t.db, { queue: 'send-basic' });
    expect(delivery?.message.id).toBe(sent.id);
    expect(delivery?.message.attempts).toBe(1);
  });

  it('keeps batch order and returns one message per input', async () => {
    await createQueue(t.db, { name: 'send-batch' });
    const sent = await sendBatch(t.db, {
      queue: 'send-batch',
      messages: Array.from({ length: 50 }, (_, i) => ({ payload: { i } })),
    });
    expect(sent.map((m) => m.payload)).toEqual(Array.from({ length: 50 }, (_, i) => ({ i })));
    const ids = sent.map((m) => BigInt(m.id));
    expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
  });

  it('leaves nothing when the caller rolls its transaction back', async () => {
    await createQueue(t.db, { name: 'send-rollback' });
    await expect(
      t.db.transaction().execute(async (trx) => {
        await send(trx, { queue: 'send-rollback', message: { payload: 'x' } });
        throw new Error('business failure');
      }),
    ).rejects.toThrow('business failure');
    const { rows } = await sql<{
      n: string;
    }>`SELECT count(*) AS n FROM holdline.messages WHERE queue = 'send-rollback'`.execute(t.db);
    expect(rows[0]?.n).toBe('0');
  });
});
