import { sql } from 'kysely';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { eventually } from '../graphql/harness.ts';
import type { GraphQLErrorJson } from '../graphql/harness.ts';
import { onlyErrorCode, startSecureService, subscribeSse, subscribeWs } from './harness.ts';
import type { SecureService } from './harness.ts';

let t: TestDatabase;
let svc: SecureService;
beforeAll(async () => {
  t = await createTestDatabase();
  // A slow poll: wake-ups, not polling, must deliver what these tests wait for.
  svc = await startSecureService(t, { pollIntervalMs: 5_000 });
});
afterAll(async () => {
  await svc.stop();
  await t.drop();
});

const SEND = `mutation ($q: String!, $p: JSON!) { send(queue: $q, message: { payload: $p }) { id } }`;
const PUBLISH = `mutation ($topic: String!, $p: JSON!) {
  publish(topic: $topic, message: { payload: $p }) { id queue }
}`;
const RECEIVE = `mutation ($q: String!, $wait: Int) {
  receive(queue: $q, waitSeconds: $wait) { receipt message { id payload } }
}`;
const MESSAGE = `query ($id: ID!) { message(id: $id) { id queue payload } }`;
const DELIVERIES = `subscription ($q: String!) {
  deliveries(queue: $q) { receipt message { id queue payload } }
}`;

async function total(queue: string): Promise<number> {
  return (await svc.api.engine.queueStats(queue))?.total ?? -1;
}

describe('publish', () => {
  let sender: string;
  beforeAll(async () => {
    sender = await svc.token('publisher', 'send:pub.mine*');
    for (const q of ['pub.mine', 'pub.mine-2', 'pub.theirs']) await svc.api.engine.createQueue(q);
    await svc.api.engine.bindQueue('pub.mine', 'orders.*');
    await svc.api.engine.bindQueue('pub.mine-2', 'orders.#');
    await svc.api.engine.bindQueue('pub.theirs', 'orders.created');
  });

  it('is checked for every queue the topic reaches: one forbidden queue publishes nothing', async () => {
    const result = await svc.request(sender, PUBLISH, { topic: 'orders.created', p: { n: 1 } });
    expect(onlyErrorCode(result)).toBe('FORBIDDEN');
    expect(result.errors?.[0]?.message).not.toContain('pub.theirs');
    expect([await total('pub.mine'), await total('pub.mine-2'), await total('pub.theirs')]).toEqual(
      [0, 0, 0],
    );
  });

  it('copies into every queue when the token may send to all of them', async () => {
    const data = await svc.ok<{ publish: { queue: string }[] }>(sender, PUBLISH, {
      topic: 'orders.shipped',
      p: { n: 2 },
    });
    expect(data.publish.map((m) => m.queue).sort()).toEqual(['pub.mine', 'pub.mine-2']);
    expect(await total('pub.theirs')).toBe(0);
    await svc.api.engine.purge('pub.mine');
    await svc.api.engine.purge('pub.mine-2');
  });

  it('wakes a long-polling consumer once the checked publish commits', async () => {
    const consumer = await svc.token('pub-consumer', 'receive:pub.mine');
    const started = Date.now();
    const waiting = svc.ok<{ receive: unknown[] }>(consumer, RECEIVE, { q: 'pub.mine', wait: 5 });
    // Let the long poll register as a waiting consumer first.
    await eventually(async () => {
      const { rows } = await sql<{ n: string }>`
        SELECT count(*) AS n FROM holdline.waiting_consumers WHERE queue = 'pub.mine'`.execute(
        t.db,
      );
      return rows[0]?.n === '1';
    }, 'the consumer waits');
    await svc.ok(sender, PUBLISH, { topic: 'orders.paid', p: { n: 3 } });
    expect((await waiting).receive).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('with send on every queue needs no check and reaches them all', async () => {
    const everywhere = await svc.token('publish-all', 'send:*');
    const data = await svc.ok<{ publish: { queue: string }[] }>(everywhere, PUBLISH, {
      topic: 'orders.created',
      p: { n: 4 },
    });
    expect(data.publish.map((m) => m.queue).sort()).toEqual([
      'pub.mine',
      'pub.mine-2',
      'pub.theirs',
    ]);
  });
});

describe('message(id)', () => {
  let reader: string;
  let mine: string;
  let theirs: string;
  beforeAll(async () => {
    reader = await svc.token('leak-reader', 'read:leak.mine');
    await svc.api.engine.createQueue('leak.mine');
    await svc.api.engine.createQueue('leak.theirs');
    mine = (await svc.api.engine.send('leak.mine', { payload: { mine: true } })).id;
    theirs = (await svc.api.engine.send('leak.theirs', { payload: { card: '4111-1111' } })).id;
  });

  it("answers null for another queue's message, exactly as for no message", async () => {
    const other = await svc.request(reader, MESSAGE, { id: theirs });
    const missing = await svc.request(reader, MESSAGE, { id: '987654321' });
    expect(other).toMatchObject({ status: 200, data: { message: null } });
    expect(other.errors).toBeUndefined();
    expect(JSON.stringify(other)).not.toContain('4111');
    expect({ data: other.data, errors: other.errors }).toEqual({
      data: missing.data,
      errors: missing.errors,
    });
  });

  it('returns a message of a readable queue', async () => {
    const data = await svc.ok<{ message: { payload: unknown } }>(reader, MESSAGE, { id: mine });
    expect(data.message.payload).toEqual({ mine: true });
  });

  it('refuses queue and messages of another queue whether or not it exists', async () => {
    for (const name of ['leak.theirs', 'leak.nothing']) {
      const queue = await svc.request(reader, `query ($n: String!) { queue(name: $n) { name } }`, {
        n: name,
      });
      expect(onlyErrorCode(queue)).toBe('FORBIDDEN');
      const page = await svc.request(reader, `query ($n: String!) { messages(queue: $n) { id } }`, {
        n: name,
      });
      expect(onlyErrorCode(page)).toBe('FORBIDDEN');
    }
  });

  it('lists only readable queues', async () => {
    const data = await svc.ok<{ queues: { name: string }[] }>(reader, `{ queues { name } }`);
    expect(data.queues.map((q) => q.name)).toEqual(['leak.mine']);
  });
});

describe('receipts', () => {
  let consumer: string;
  beforeAll(async () => {
    consumer = await svc.token('receipt-consumer', 'receive:rc.mine');
    await svc.api.engine.createQueue('rc.mine', { maxAttempts: 1 });
    await svc.api.engine.createQueue('rc.theirs');
  });

  async function leased(queue: string): Promise<string> {
    await svc.api.engine.send(queue, { payload: { queue } });
    const [delivery] = await svc.api.engine.receive({ queue, max: 1 });
    return delivery!.receipt;
  }

  it("of another queue's delivery cannot be acked, nacked or extended", async () => {
    const receipt = await leased('rc.theirs');
    for (const [query, vars] of [
      [`mutation ($r: String!) { ack(receipt: $r) }`, { r: receipt }],
      [`mutation ($r: String!) { nack(receipt: $r) }`, { r: receipt }],
      [
        `mutation ($r: String!) { extendLease(receipt: $r, seconds: 5) { receipt } }`,
        { r: receipt },
      ],
    ] as const) {
      expect(onlyErrorCode(await svc.request(consumer, query, vars))).toBe('FORBIDDEN');
    }
    expect(await svc.api.engine.queueStats('rc.theirs')).toMatchObject({ leased: 1 });
    await svc.api.engine.ack(receipt);
  });

  it('of two queues in one ackBatch fail it whole when one is forbidden', async () => {
    const mine = await leased('rc.mine');
    const theirs = await leased('rc.theirs');
    const result = await svc.request(
      consumer,
      `mutation ($r: [String!]!) { ackBatch(receipts: $r) }`,
      {
        r: [mine, theirs],
      },
    );
    expect(onlyErrorCode(result)).toBe('FORBIDDEN');
    expect(await svc.api.engine.queueStats('rc.mine')).toMatchObject({ leased: 1 });
    expect(await svc.api.engine.queueStats('rc.theirs')).toMatchObject({ leased: 1 });
    await svc.api.engine.ackBatch([mine, theirs]);
  });

  it('of its own queues in one ackBatch are acked, with lost leases left alone', async () => {
    const first = await leased('rc.mine');
    const second = await leased('rc.mine');
    // Acked already: its lease is gone, so the batch passes over it.
    await svc.api.engine.ack(second);
    const result = await svc.request(
      consumer,
      `mutation ($r: [String!]!) { ackBatch(receipts: $r) }`,
      { r: [first, second] },
    );
    expect(result).toMatchObject({ status: 200, data: { ackBatch: 1 } });
    expect(result).not.toHaveProperty('errors');
    expect(await svc.api.engine.queueStats('rc.mine')).toMatchObject({ leased: 0 });
  });

  it('whose message was dead-lettered into a queue the token cannot see get LEASE_LOST', async () => {
    const receipt = await leased('rc.mine');
    // Its last attempt fails elsewhere (as a reaped lease would): the message moves to
    // rc.mine.dlq, a queue this token may not receive from.
    await svc.api.engine.nack(receipt, { error: 'boom' });
    expect(await total('rc.mine.dlq')).toBe(1);
    const result = await svc.request(consumer, `mutation ($r: String!) { nack(receipt: $r) }`, {
      r: receipt,
    });
    expect(onlyErrorCode(result)).toBe('LEASE_LOST');
  });

  it('that are malformed are BAD_USER_INPUT, as without authentication', async () => {
    const result = await svc.request(consumer, `mutation { ack(receipt: "nonsense") }`);
    expect(onlyErrorCode(result)).toBe('BAD_USER_INPUT');
  });

  it('of its own queue are settled', async () => {
    const receipt = await leased('rc.mine');
    expect(
      await svc.ok(consumer, `mutation ($r: String!) { ack(receipt: $r) }`, { r: receipt }),
    ).toEqual({
      ack: true,
    });
  });
});

describe('scopes', () => {
  beforeAll(async () => {
    await svc.api.engine.createQueue('imp.q');
  });

  it('receive implies read; send does not', async () => {
    const consumer = await svc.token('imp-consumer', 'receive:imp.q');
    const producer = await svc.token('imp-producer', 'send:imp.q');
    const read = `{ queue(name: "imp.q") { name } }`;
    expect(await svc.ok(consumer, read)).toEqual({ queue: { name: 'imp.q' } });
    expect(onlyErrorCode(await svc.request(producer, read))).toBe('FORBIDDEN');
    expect(
      (await svc.ok<{ send: { id: string } }>(producer, SEND, { q: 'imp.q', p: 1 })).send.id,
    ).toBeTruthy();
    expect(onlyErrorCode(await svc.request(consumer, SEND, { q: 'imp.q', p: 1 }))).toBe(
      'FORBIDDEN',
    );
  });

  it('admin on a pattern allows everything on its queues, and nothing elsewhere', async () => {
    const owner = await svc.token('imp-owner', 'admin:imp.*');
    await svc.ok(owner, SEND, { q: 'imp.q', p: 2 });
    const received = await svc.ok<{ receive: unknown[] }>(owner, RECEIVE, { q: 'imp.q' });
    expect(received.receive).toHaveLength(1);
    await svc.ok(owner, `mutation { purge(queue: "imp.q") }`);
    expect(
      onlyErrorCode(await svc.request(owner, `mutation { createQueue(name: "other") { name } }`)),
    ).toBe('FORBIDDEN');
  });

  it('a dead-letter queue named in the settings needs admin there too', async () => {
    const owner = await svc.token('dlq-owner', 'admin:dl.mine*');
    const create = `mutation ($n: String!, $d: String) {
      createQueue(name: $n, config: { deadLetterQueue: $d }) { name config { deadLetterQueue } }
    }`;
    expect(onlyErrorCode(await svc.request(owner, create, { n: 'dl.mine', d: 'dl.theirs' }))).toBe(
      'FORBIDDEN',
    );
    expect(await svc.api.engine.getQueue('dl.mine')).toBeUndefined();
    const data = await svc.ok(owner, create, { n: 'dl.mine', d: 'dl.mine.dead' });
    expect(data).toEqual({
      createQueue: { name: 'dl.mine', config: { deadLetterQueue: 'dl.mine.dead' } },
    });
    const configure = `mutation { configureQueue(name: "dl.mine", config: { deadLetterQueue: "dl.theirs" }) { name } }`;
    expect(onlyErrorCode(await svc.request(owner, configure))).toBe('FORBIDDEN');
  });

  it('schedules need admin on their queue to be made or changed, and read to be listed', async () => {
    await svc.api.engine.createQueue('sch.mine');
    await svc.api.engine.createQueue('sch.theirs');
    const owner = await svc.token('sch-owner', 'admin:sch.mine');
    const sender = await svc.token('sch-sender', 'send:sch.theirs');
    const create = `mutation ($n: String!, $q: String!) {
      createSchedule(name: $n, cron: "0 * * * *", queue: $q, message: { payload: 1 }) { name }
    }`;
    expect(onlyErrorCode(await svc.request(owner, create, { n: 'sch-a', q: 'sch.theirs' }))).toBe(
      'FORBIDDEN',
    );
    expect(onlyErrorCode(await svc.request(sender, create, { n: 'sch-a', q: 'sch.theirs' }))).toBe(
      'FORBIDDEN',
    );
    expect(await svc.api.engine.listSchedules()).toEqual([]);
    await svc.ok(owner, create, { n: 'sch-mine', q: 'sch.mine' });
    await svc.api.engine.createSchedule({
      name: 'sch-theirs',
      cron: '0 * * * *',
      queue: 'sch.theirs',
      message: { payload: 2 },
    });
    const listed = await svc.ok<{ schedules: { name: string }[] }>(owner, `{ schedules { name } }`);
    expect(listed.schedules).toEqual([{ name: 'sch-mine' }]);
    for (const op of ['pauseSchedule', 'resumeSchedule']) {
      expect(
        onlyErrorCode(await svc.request(owner, `mutation { ${op}(name: "sch-theirs") { name } }`)),
      ).toBe('FORBIDDEN');
    }
    expect(
      onlyErrorCode(await svc.request(owner, `mutation { deleteSchedule(name: "sch-theirs") }`)),
    ).toBe('FORBIDDEN');
    expect((await svc.api.engine.getSchedule('sch-theirs'))?.paused).toBe(false);
  });
});

describe('a scoped subscriber', () => {
  beforeAll(async () => {
    await svc.api.engine.createQueue('ss.mine');
    await svc.api.engine.createQueue('ss.theirs');
  });

  it.each(['sse', 'ws'] as const)(
    "over %s receives its queue's deliveries and never another queue's",
    async (transport) => {
      const secret = await svc.token(`ss-${transport}`, 'receive:ss.mine');
      const forbidden =
        transport === 'sse'
          ? await subscribeSse(svc.baseUrl, secret, DELIVERIES, { q: 'ss.theirs' })
          : subscribeWs(svc.baseUrl, secret, DELIVERIES, { q: 'ss.theirs' });
      const allowed =
        transport === 'sse'
          ? await subscribeSse(svc.baseUrl, secret, DELIVERIES, { q: 'ss.mine' })
          : subscribeWs(svc.baseUrl, secret, DELIVERIES, { q: 'ss.mine' });
      try {
        expect(onlyErrorCode(await forbidden.next())).toBe('FORBIDDEN');
        const theirs = await svc.api.engine.send('ss.theirs', { payload: { theirs: transport } });
        await svc.api.engine.send('ss.mine', { payload: { mine: transport } });
        const first = await allowed.next();
        expect(first.data?.deliveries).toMatchObject({
          message: { queue: 'ss.mine', payload: { mine: transport } },
        });
        // The other queue's message was never leased by anyone.
        const untouched = await svc.api.engine.getMessage(theirs.id);
        expect(untouched).toMatchObject({ state: 'READY', attempts: 0 });
        await svc.api.engine.ack((first.data!.deliveries as { receipt: string }).receipt);
        await svc.api.engine.purge('ss.theirs');
      } finally {
        await forbidden.close();
        await allowed.close();
      }
    },
  );
});

describe('revocation', () => {
  beforeAll(async () => {
    await svc.api.engine.createQueue('rv.q');
  });

  it.each(['sse', 'ws'] as const)(
    'ends an open %s deliveries subscription before its next delivery, and gives the message back',
    async (transport) => {
      const name = `rv-${transport}`;
      const secret = await svc.token(name, 'receive:rv.q');
      const sub =
        transport === 'sse'
          ? await subscribeSse(svc.baseUrl, secret, DELIVERIES, { q: 'rv.q' })
          : subscribeWs(svc.baseUrl, secret, DELIVERIES, { q: 'rv.q' });
      try {
        const before = await svc.api.engine.send('rv.q', { payload: { n: 'before' } });
        const first = await sub.next();
        expect(first.data?.deliveries).toMatchObject({ message: { id: before.id } });
        // Acked through the API, as a consumer does: the subscription's slot frees at once.
        await svc.ok(secret, `mutation ($r: String!) { ack(receipt: $r) }`, {
          r: (first.data!.deliveries as { receipt: string }).receipt,
        });

        expect(await svc.control.revoke(name)).toBe(true);
        const after = await svc.api.engine.send('rv.q', { payload: { n: 'after' } });
        const ended = await sub.next();
        expect(ended.data ?? null).toBeNull();
        expect(onlyErrorCode(ended)).toBe('UNAUTHENTICATED');
        // Leased by the stream, never shown to the revoked token, and released at once.
        await eventually(
          async () => (await svc.api.engine.getMessage(after.id))?.state === 'READY',
          'the message is back in line',
        );
        await svc.api.engine.purge('rv.q');
      } finally {
        await sub.close();
      }
    },
  );

  it('refuses new operations on a WebSocket connected before the token was revoked', async () => {
    const secret = await svc.token('rv-socket', 'read:rv.q');
    let connections = 0;
    const client = createClient({
      url: `${svc.baseUrl.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      // One socket for both operations: the second must be refused on a live connection.
      lazy: false,
      connectionParams: { authorization: `Bearer ${secret}` },
      on: { connected: () => void connections++ },
    });
    type Result = { data?: unknown; errors?: GraphQLErrorJson[] };
    // The first result of one operation, then the operation is ended.
    const once = (): Promise<Result> =>
      new Promise((resolve, reject) => {
        let first: Result | undefined;
        const dispose = client.subscribe(
          { query: `subscription { queueStats(queue: "rv.q") { ready } }` },
          {
            next: (value) => {
              first ??= value as Result;
              dispose();
              resolve(first);
            },
            error: (error) =>
              Array.isArray(error)
                ? resolve({ errors: error as GraphQLErrorJson[] })
                : reject(error as Error),
            complete: () => first !== undefined || reject(new Error('completed without a result')),
          },
        );
      });
    try {
      expect((await once()).data).toEqual({ queueStats: { ready: 0 } });
      await svc.control.revoke('rv-socket');
      expect(onlyErrorCode(await once())).toBe('UNAUTHENTICATED');
      expect(connections).toBe(1);
    } finally {
      await client.dispose();
    }
  });
});
