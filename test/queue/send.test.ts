import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueue, getMessage, receive, send, sendBatch } from '../../src/queue/operations.ts';
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

  // send builds its result from the input and the new id instead of reading the row back.
  it.each([
    ['a plain message', { payload: { id: 1, nested: [1, 'two', null] } }],
    [
      'a delayed message with priority, group and headers',
      {
        payload: 'text',
        delaySeconds: 60,
        priority: -3,
        groupKey: 'g1',
        headers: { trace: 'abc' },
      },
    ],
    ['a message with a past runAt', { payload: 7, runAt: new Date(Date.now() - 60_000) }],
  ])('returns %s exactly as it is stored', async (_label, message) => {
    await createQueue(t.db, { name: 'send-stored' }).catch(() => undefined);
    const sent = await send(t.db, { queue: 'send-stored', message });
    const stored = await getMessage(t.db, { id: sent.id });
    expect(stored).toEqual({
      ...sent,
      position: stored?.position,
      estimatedWaitSeconds: null,
      waitingReason: stored?.waitingReason,
      nextEligibleAt: stored?.nextEligibleAt,
    });
  });

  it('returns a batch exactly as it is stored', async () => {
    await createQueue(t.db, { name: 'send-batch-stored' });
    const sent = await sendBatch(t.db, {
      queue: 'send-batch-stored',
      messages: [
        { payload: { a: [1, { b: null }] } },
        { payload: 'two', delaySeconds: 30, priority: 5, groupKey: 'g', headers: { h: 1 } },
        { payload: 3, runAt: new Date(Date.now() - 1_000) },
      ],
    });
    for (const message of sent) {
      const stored = await getMessage(t.db, { id: message.id });
      expect(stored).toEqual({
        ...message,
        position: stored?.position,
        estimatedWaitSeconds: null,
        waitingReason: stored?.waitingReason,
        nextEligibleAt: stored?.nextEligibleAt,
      });
    }
  });

  it('returns the live message for a repeated dedupKey, from send as from sendBatch', async () => {
    await createQueue(t.db, { name: 'send-dedup' });
    const first = await send(t.db, {
      queue: 'send-dedup',
      message: { payload: { v: 1 }, dedupKey: 'k' },
    });
    const again = await send(t.db, {
      queue: 'send-dedup',
      message: { payload: { v: 2 }, dedupKey: 'k' },
    });
    expect(again).toEqual(first);
    const [batched] = await sendBatch(t.db, {
      queue: 'send-dedup',
      messages: [{ payload: { v: 3 }, dedupKey: 'k' }],
    });
    expect(batched).toEqual(first);
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
