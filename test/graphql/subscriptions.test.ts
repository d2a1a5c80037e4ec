import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachWebSocketServer } from '../../src/graphql/schema.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { eventually, httpRequest, startService } from './harness.ts';
import type {
  DeliveryJson,
  GraphQLResult,
  GraphQLService,
  JsonObject,
  StatsJson,
} from './harness.ts';
import { sseTransport, wsTransport } from './transports.ts';
import type { ClientSubscription, Transport } from './transports.ts';

let t: TestDatabase;
let api: GraphQLService;
let server: http.Server;
let disposeWebSockets: () => Promise<void>;
let baseUrl: string;
let transports: Transport[];

beforeAll(async () => {
  t = await createTestDatabase();
  api = await startService(t);
  server = http.createServer((req, res) => void api.handler.yoga(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  disposeWebSockets = attachWebSocketServer(api.handler.yoga, server);
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  transports = [sseTransport(baseUrl), wsTransport(baseUrl)];
});

afterAll(async () => {
  await disposeWebSockets();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await api.stop();
  await t.drop();
});

const DELIVERIES = `subscription ($queue: String!, $prefetch: Int, $visibilityTimeout: Int) {
  deliveries(queue: $queue, prefetch: $prefetch, visibilityTimeout: $visibilityTimeout) {
    receipt leaseExpiresAt message { id payload attempts state }
  }
}`;
// Without oldestReadyAgeSeconds: its whole-second ticks would add updates these tests do
// not expect.
const STATS = `subscription ($queue: String!) {
  queueStats(queue: $queue) { queue ready delayed leased total }
}`;

async function ok<T = JsonObject>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const result = await httpRequest<T>(baseUrl, query, variables);
  if (result.errors !== undefined || result.data == null) {
    throw new Error(`expected data, got ${JSON.stringify(result)}`);
  }
  return result.data;
}

async function createQueue(name: string): Promise<void> {
  await ok(`mutation ($name: String!) { createQueue(name: $name) { name } }`, { name });
}

async function sendMany(queue: string, count: number): Promise<string[]> {
  const data = await ok<{ sendBatch: { id: string }[] }>(
    `mutation ($queue: String!, $messages: [SendInput!]!) {
      sendBatch(queue: $queue, messages: $messages) { id }
    }`,
    { queue, messages: Array.from({ length: count }, (_, i) => ({ payload: { i } })) },
  );
  return data.sendBatch.map((m) => m.id);
}

async function receive(queue: string, max: number, waitSeconds = 0): Promise<DeliveryJson[]> {
  const data = await ok<{ receive: DeliveryJson[] }>(
    `mutation ($queue: String!, $max: Int, $waitSeconds: Int) {
      receive(queue: $queue, max: $max, waitSeconds: $waitSeconds, visibilityTimeout: 300) {
        receipt leaseExpiresAt message { id payload attempts state }
      }
    }`,
    { queue, max, waitSeconds },
  );
  return data.receive;
}

async function ack(receipts: string[]): Promise<number> {
  const data = await ok<{ ackBatch: number }>(
    `mutation ($r: [String!]!) { ackBatch(receipts: $r) }`,
    { r: receipts },
  );
  return data.ackBatch;
}

async function leasedCount(queue: string): Promise<number> {
  const { rows } = await sql<{ leased: string }>`
    SELECT count(*) FILTER (WHERE lease_token IS NOT NULL) AS leased
    FROM holdline.messages WHERE queue = ${queue}`.execute(t.db);
  return Number(rows[0]?.leased);
}

async function nextDelivery(subscription: ClientSubscription): Promise<DeliveryJson> {
  const result = await subscription.next();
  if (result.errors !== undefined) throw new Error(JSON.stringify(result.errors));
  return (result.data as { deliveries: DeliveryJson }).deliveries;
}

describe.each(['sse', 'ws'] as const)('deliveries over %s', (transportName) => {
  const transport = (): Transport => transports.find((x) => x.name === transportName)!;

  it('holds at most prefetch unacked deliveries and sends the next once one is acked over HTTP', async () => {
    const queue = `s-prefetch-${transportName}`;
    await createQueue(queue);
    const sub = await transport().subscribe(DELIVERIES, {
      queue,
      prefetch: 2,
      visibilityTimeout: 300,
    });
    try {
      const sent = await sendMany(queue, 5);
      const first = await nextDelivery(sub);
      const second = await nextDelivery(sub);
      expect(sent).toEqual(expect.arrayContaining([first.message.id, second.message.id]));
      expect(first.message).toMatchObject({ state: 'LEASED', attempts: 1 });

      // The stream holds exactly two leases: a competing consumer gets the other three.
      const others = await receive(queue, 10);
      expect(others).toHaveLength(3);
      expect(sub.buffered).toBe(0);
      await ack(others.map((d) => d.receipt));
      // Two more for the queue: the stream may take one only when a slot frees.
      const more = await sendMany(queue, 2);
      expect(await leasedCount(queue)).toBe(2);

      const acked = performance.now();
      expect(await ack([first.receipt])).toBe(1);
      const third = await nextDelivery(sub);
      // The ack went through this instance: the stream hears of it at once, not at a poll.
      expect(performance.now() - acked).toBeLessThan(500);
      expect(more).toContain(third.message.id);
      // Still two held (second and third): one message of the two is left for others.
      expect((await receive(queue, 10)).map((d) => d.message.id)).toEqual(
        more.filter((id) => id !== third.message.id),
      );
    } finally {
      await sub.close();
    }
  });

  it('runs no receive for an ack while the stream has free slots (it waits for messages)', async () => {
    const queue = `s-ack-no-receive-${transportName}`;
    await createQueue(queue);
    // An instance of its own whose stream makes no poll-interval look during the test, so
    // that every receive it runs has a cause this test can see.
    const quiet = await startService(t, { pollIntervalMs: 60_000 });
    const quietServer = http.createServer((req, res) => void quiet.handler.yoga(req, res));
    await new Promise<void>((resolve) => quietServer.listen(0, '127.0.0.1', resolve));
    const disposeQuietSockets = attachWebSocketServer(quiet.handler.yoga, quietServer);
    const quietUrl = `http://127.0.0.1:${(quietServer.address() as AddressInfo).port}`;
    const quietTransport = (transportName === 'sse' ? sseTransport : wsTransport)(quietUrl);
    const engine = quiet.engine;
    const receiveOf = Object.getPrototypeOf(engine) as Pick<typeof engine, 'receive'>;
    let receives = 0;
    engine.receive = (params) => {
      if (params.queue === queue) receives++;
      return receiveOf.receive.call(engine, params);
    };
    const sub = await quietTransport.subscribe(DELIVERIES, {
      queue,
      prefetch: 10,
      visibilityTimeout: 300,
    });
    try {
      await sendMany(queue, 1);
      const delivery = await nextDelivery(sub);
      // A send's wake-up may reach the stream twice (this process's and the NOTIFY's): let
      // the second one's receive pass before counting.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const before = receives;
      const acked = await httpRequest<{ ack: number }>(
        quietUrl,
        'mutation ($receipts: [String!]!) { ack: ackBatch(receipts: $receipts) }',
        { receipts: [delivery.receipt] },
      );
      expect(acked.data?.ack).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(receives).toBe(before);
      // Still awake for messages: the next send arrives.
      const [next] = await sendMany(queue, 1);
      expect((await nextDelivery(sub)).message.id).toBe(next);
    } finally {
      engine.receive = receiveOf.receive;
      await sub.close();
      await disposeQuietSockets();
      quietServer.closeAllConnections();
      await new Promise((resolve) => quietServer.close(resolve));
      await quiet.stop();
    }
  });

  it('runs one receive per delivery when fed one message at a time (no empty look after each)', async () => {
    const queue = `s-one-receive-${transportName}`;
    await createQueue(queue);
    const sub = await transport().subscribe(DELIVERIES, {
      queue,
      prefetch: 10,
      visibilityTimeout: 300,
    });
    const engine = api.engine;
    const receiveOf = Object.getPrototypeOf(engine) as Pick<typeof engine, 'receive'>;
    let receives = 0;
    engine.receive = (params) => {
      if (params.queue === queue) receives++;
      return receiveOf.receive.call(engine, params);
    };
    const deliveries = 8;
    try {
      // The first delivery registers the stream's wait; count from the second on.
      await sendMany(queue, 1);
      await nextDelivery(sub);
      const started = Date.now();
      const before = receives;
      // Sent as a plain-SQL producer does, from another session: its NOTIFY is the one
      // wake-up (a send through this service would also wake the stream in-process).
      for (let i = 0; i < deliveries; i++) {
        const { rows } = await t.pool.query<{ id: string }>(
          `SELECT holdline.send($1, '{}') AS id`,
          [queue],
        );
        expect((await nextDelivery(sub)).message.id).toBe(rows[0]!.id);
      }
      // Each wake-up leases its one message; besides those, only the stream's
      // poll-interval looks (one a second while it holds deliveries) may have run.
      const pollLooks = Math.ceil((Date.now() - started) / engine.pollInterval);
      expect(receives - before).toBeGreaterThanOrEqual(deliveries);
      expect(receives - before).toBeLessThanOrEqual(deliveries + pollLooks);
    } finally {
      engine.receive = receiveOf.receive;
      await sub.close();
    }
  });

  it('releases unacked deliveries at once when the subscriber disconnects', async () => {
    const queue = `s-release-${transportName}`;
    await createQueue(queue);
    const sub = await transport().subscribe(DELIVERIES, {
      queue,
      prefetch: 2,
      visibilityTimeout: 300,
    });
    await sendMany(queue, 2);
    const held = [(await nextDelivery(sub)).message.id, (await nextDelivery(sub)).message.id];
    expect(await receive(queue, 10)).toEqual([]);

    const closed = performance.now();
    await sub.close();
    await eventually(async () => (await leasedCount(queue)) === 0, 'the leases are released');
    // Leases were for 300 s and the poll interval is 1 s: only the release explains this.
    expect(performance.now() - closed).toBeLessThan(500);
    const released = await receive(queue, 10);
    expect(released.map((d) => d.message.id).sort()).toEqual([...held].sort());
    const { rows } = await sql<{ attempts: number; last_error: string }>`
      SELECT attempts, last_error FROM holdline.messages WHERE queue = ${queue}`.execute(t.db);
    // The released delivery counted as an attempt, with the reason kept.
    expect(rows).toEqual([
      { attempts: 2, last_error: 'subscriber disconnected' },
      { attempts: 2, last_error: 'subscriber disconnected' },
    ]);
  });

  it('fails at once with QUEUE_NOT_FOUND or BAD_USER_INPUT', async () => {
    const missing = await transport().subscribe(DELIVERIES, { queue: 's-nobody' });
    expect((await missing.next()).errors?.[0]?.extensions?.code).toBe('QUEUE_NOT_FOUND');
    await missing.close();
    await createQueue(`s-bad-${transportName}`);
    const bad = await transport().subscribe(DELIVERIES, {
      queue: `s-bad-${transportName}`,
      prefetch: 0,
    });
    expect((await bad.next()).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    await bad.close();
  });

  it('pushes queue stats at once and again when they change', async () => {
    const queue = `s-stats-${transportName}`;
    await createQueue(queue);
    const sub = await transport().subscribe<{ queueStats: Record<string, unknown> }>(STATS, {
      queue,
    });
    try {
      expect((await sub.next()).data?.queueStats).toEqual({
        queue,
        ready: 0,
        delayed: 0,
        leased: 0,
        total: 0,
      });
      await sendMany(queue, 1);
      expect((await sub.next()).data?.queueStats).toMatchObject({ ready: 1, total: 1 });
      await receive(queue, 1);
      expect((await sub.next()).data?.queueStats).toMatchObject({ ready: 0, leased: 1 });
    } finally {
      await sub.close();
    }
  });
});

describe.each(['sse', 'ws'] as const)('mid-stream errors over %s', (transportName) => {
  it('end the stream with the error code when the queue is deleted', async () => {
    const transport = transports.find((x) => x.name === transportName)!;
    const queue = `s-deleted-${transportName}`;
    await createQueue(queue);
    const sub = await transport.subscribe(DELIVERIES, { queue });
    try {
      // Deleted under the idle stream: it finds out at its next look (a poll interval).
      await ok(`mutation ($q: String!) { deleteQueue(name: $q) }`, { q: queue });
      const result = await sub.next();
      expect(result.errors?.[0]?.extensions?.code).toBe('QUEUE_NOT_FOUND');
      expect(result.errors?.[0]?.message).toContain(queue);
    } finally {
      await sub.close();
    }
  });
});

describe('queueStats', () => {
  it('coalesces changes to at most 4 updates a second', async () => {
    const queue = 's-stats-rate';
    await createQueue(queue);
    const sub = await sseTransport(baseUrl).subscribe<{ queueStats: StatsJson }>(STATS, {
      queue,
    });
    try {
      expect((await sub.next()).data?.queueStats.total).toBe(0);
      const started = performance.now();
      const count = 40;
      for (let i = 0; i < count; i++) await api.engine.send(queue, { payload: i });
      let updates = 0;
      let total = 0;
      while (total < count) {
        total = (await sub.next()).data?.queueStats.total ?? 0;
        updates += 1;
      }
      const elapsedMs = performance.now() - started;
      // 40 changes, but one look per 250 ms: at most one update per look.
      expect(updates).toBeLessThanOrEqual(Math.floor(elapsedMs / 250) + 1);
      expect(updates).toBeLessThan(count);
    } finally {
      await sub.close();
    }
  });
});

describe('WebSocket operations', () => {
  it('answer a syntax error with an error, keeping the socket for other operations', async () => {
    const ws = wsTransport(baseUrl);
    const broken = await ws.subscribe(`subscription { deliveries(queue: `);
    expect((await broken.next()).errors?.[0]?.message).toContain('Syntax Error');
    await broken.close();
    const fine = await ws.subscribe<{ queues: unknown[] }>(`query { queues { name } }`);
    expect(Array.isArray((await fine.next()).data?.queues)).toBe(true);
    await fine.close();
  });
});

describe('deliveries across instances', () => {
  it('learns of an ack made on another instance within a poll interval', async () => {
    const other = await startService(t);
    try {
      const queue = 's-cross-instance';
      await createQueue(queue);
      const sub = await sseTransport(baseUrl).subscribe(DELIVERIES, {
        queue,
        prefetch: 1,
        visibilityTimeout: 300,
      });
      try {
        await sendMany(queue, 2);
        const first = await nextDelivery(sub);
        // Acked through the other instance: this one's tracker never hears of it.
        expect(
          await other.ok(`mutation ($r: String!) { ack(receipt: $r) }`, { r: first.receipt }),
        ).toEqual({ ack: true });
        const second = await nextDelivery(sub);
        expect(second.message.id).not.toBe(first.message.id);
      } finally {
        await sub.close();
      }
    } finally {
      await other.stop();
    }
  });
});

describe('releaseSubscriptions', () => {
  it('ends open streams and gives their deliveries back', async () => {
    const queue = 's-shutdown';
    await createQueue(queue);
    const sub = await sseTransport(baseUrl).subscribe(DELIVERIES, {
      queue,
      visibilityTimeout: 300,
    });
    await sendMany(queue, 1);
    const held = await nextDelivery(sub);
    await api.handler.releaseSubscriptions();
    await eventually(() => sub.ended, 'the stream ended');
    expect((await receive(queue, 1)).map((d) => d.message.id)).toEqual([held.message.id]);
    await sub.close();
  });
});

describe('receive long poll over HTTP', () => {
  it('wakes within 100 ms of a commit made from plain SQL on another connection', async () => {
    const queue = 's-long-poll';
    await createQueue(queue);
    const polling = httpRequest<{ receive: DeliveryJson[] }>(
      baseUrl,
      `mutation { receive(queue: "${queue}", waitSeconds: 5) { message { id payload } } }`,
    );
    // The long poll has registered as idle: from now on a commit notifies it.
    await eventually(async () => {
      const { rows } = await sql`
        SELECT 1 FROM holdline.waiting_consumers WHERE queue = ${queue}`.execute(t.db);
      return rows.length > 0;
    }, 'the long poll is waiting');

    const producer = await t.connect();
    let committedAt: number;
    let id: string;
    try {
      const { rows } = await producer.query<{ id: string }>(
        `SELECT holdline.send($1, '{"from": "sql"}'::jsonb) AS id`,
        [queue],
      );
      committedAt = performance.now();
      id = rows[0]!.id;
    } finally {
      await producer.end();
    }
    const result: GraphQLResult<{ receive: DeliveryJson[] }> = await polling;
    const wokeAfterMs = performance.now() - committedAt;
    expect(result.data?.receive).toEqual([{ message: { id, payload: { from: 'sql' } } }]);
    expect(wokeAfterMs).toBeLessThan(100);
  });
});
