import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { databaseSnapshot, startService } from './harness.ts';
import type { DeliveryJson, GraphQLService, MessageJson, QueueJson } from './harness.ts';

let t: TestDatabase;
let api: GraphQLService;
beforeAll(async () => {
  t = await createTestDatabase();
  api = await startService(t);
});
afterAll(async () => {
  await api.stop();
  await t.drop();
});

const CREATE = `mutation ($name: String!, $config: QueueConfigInput) {
  createQueue(name: $name, config: $config) {
    name paused
    config { visibilityTimeout maxAttempts deadLetterQueue backoffInitialSeconds
             backoffMaxSeconds retentionSeconds maxPayloadBytes archiveSeconds maxInFlight
             rateLimit { count perSeconds } groupMaxInFlight
             groupRateLimit { count perSeconds } }
  }
}`;
const CONFIGURE = `mutation ($name: String!, $config: QueueConfigInput!) {
  configureQueue(name: $name, config: $config) {
    config { visibilityTimeout maxAttempts deadLetterQueue backoffInitialSeconds backoffMaxSeconds maxPayloadBytes maxInFlight }
  }
}`;
const SEND = `mutation ($queue: String!, $message: SendInput!) {
  send(queue: $queue, message: $message) {
    id queue payload headers priority attempts state runAt createdAt lastError originQueue
  }
}`;
const SEND_BATCH = `mutation ($queue: String!, $messages: [SendInput!]!) {
  sendBatch(queue: $queue, messages: $messages) { id payload }
}`;
const RECEIVE = `mutation ($queue: String!, $max: Int, $visibilityTimeout: Int, $waitSeconds: Int) {
  receive(queue: $queue, max: $max, visibilityTimeout: $visibilityTimeout, waitSeconds: $waitSeconds) {
    receipt leaseExpiresAt message { id payload attempts state }
  }
}`;
const ACK = `mutation ($receipt: String!) { ack(receipt: $receipt) }`;
const NACK = `mutation ($receipt: String!, $delaySeconds: Int, $error: String) {
  nack(receipt: $receipt, delaySeconds: $delaySeconds, error: $error)
}`;
const EXTEND = `mutation ($receipt: String!, $seconds: Int!) {
  extendLease(receipt: $receipt, seconds: $seconds) { receipt leaseExpiresAt message { id } }
}`;

async function createQueue(name: string, config?: Record<string, unknown>): Promise<void> {
  await api.ok(CREATE, { name, config });
}

async function send(queue: string, message: Record<string, unknown>): Promise<string> {
  return (await api.ok<{ send: { id: string } }>(SEND, { queue, message })).send.id;
}

async function receive(queue: string, vars: Record<string, unknown> = {}): Promise<DeliveryJson[]> {
  return (await api.ok<{ receive: DeliveryJson[] }>(RECEIVE, { queue, ...vars })).receive;
}

/** Runs a request that must fail with `code` and change nothing in the database. */
async function expectRefused(
  code: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<void> {
  const before = await databaseSnapshot(t);
  expect(await api.errorCode(query, variables)).toBe(code);
  expect(await databaseSnapshot(t)).toBe(before);
}

async function messageRow(id: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await sql<Record<string, unknown>>`
    SELECT * FROM holdline.messages WHERE id = ${id}::bigint`.execute(t.db);
  return rows[0];
}

describe('createQueue', () => {
  it('creates a queue with defaults and a default dead-letter queue name', async () => {
    const data = await api.ok<{ createQueue: QueueJson }>(CREATE, { name: 'm-create' });
    expect(data.createQueue).toEqual({
      name: 'm-create',
      paused: false,
      config: {
        visibilityTimeout: 30,
        maxAttempts: 5,
        deadLetterQueue: 'm-create.dlq',
        backoffInitialSeconds: 1,
        backoffMaxSeconds: 300,
        retentionSeconds: 1_209_600,
        maxPayloadBytes: 1_048_576,
        archiveSeconds: 0,
        maxInFlight: null,
        rateLimit: null,
        groupMaxInFlight: null,
        groupRateLimit: null,
      },
    });
  });

  it('takes every setting, and null deadLetterQueue for none', async () => {
    const config = {
      visibilityTimeout: 60,
      maxAttempts: 2,
      deadLetterQueue: null,
      backoffInitialSeconds: 0.5,
      backoffMaxSeconds: 10,
      retentionSeconds: 3600,
      maxPayloadBytes: 2048,
      archiveSeconds: 7200,
      maxInFlight: 7,
      rateLimit: { count: 10, perSeconds: 2 },
      groupMaxInFlight: 3,
      groupRateLimit: { count: 4, perSeconds: 0.5 },
    };
    const data = await api.ok<{ createQueue: QueueJson }>(CREATE, { name: 'm-create-all', config });
    expect(data.createQueue.config).toEqual(config);
  });

  it('refuses a taken name with QUEUE_EXISTS', async () => {
    await createQueue('m-create-twice', { maxAttempts: 3 });
    await expectRefused('QUEUE_EXISTS', CREATE, {
      name: 'm-create-twice',
      config: { maxAttempts: 9 },
    });
  });

  it('refuses bad names and settings with BAD_USER_INPUT', async () => {
    await expectRefused('BAD_USER_INPUT', CREATE, { name: 'has space' });
    await expectRefused('BAD_USER_INPUT', CREATE, { name: 'm-bad', config: { maxAttempts: 0 } });
    await expectRefused('BAD_USER_INPUT', CREATE, {
      name: 'm-bad',
      config: { backoffInitialSeconds: 10, backoffMaxSeconds: 5 },
    });
    await expectRefused('BAD_USER_INPUT', CREATE, {
      name: 'm-bad',
      config: { visibilityTimeout: null },
    });
    await expectRefused('BAD_USER_INPUT', CREATE, {
      name: 'm-bad',
      config: { deadLetterQueue: 'm-bad' },
    });
    for (const maxInFlight of [0, -1, 100_001]) {
      await expectRefused('BAD_USER_INPUT', CREATE, { name: 'm-bad', config: { maxInFlight } });
    }
    for (const rateLimit of [
      { count: 0, perSeconds: 1 },
      { count: 5, perSeconds: 0 },
    ]) {
      await expectRefused('BAD_USER_INPUT', CREATE, { name: 'm-bad', config: { rateLimit } });
      await expectRefused('BAD_USER_INPUT', CREATE, {
        name: 'm-bad',
        config: { groupRateLimit: rateLimit },
      });
    }
    const { rows } = await sql`SELECT 1 FROM holdline.queues WHERE name = 'm-bad'`.execute(t.db);
    expect(rows).toHaveLength(0);
  });
});

describe('configureQueue', () => {
  it('changes the given settings and keeps the rest', async () => {
    await createQueue('m-configure', { maxAttempts: 4 });
    const data = await api.ok<{ configureQueue: QueueJson }>(CONFIGURE, {
      name: 'm-configure',
      config: { visibilityTimeout: 90, deadLetterQueue: 'm-configure-dead', maxPayloadBytes: 100 },
    });
    expect(data.configureQueue.config).toMatchObject({
      visibilityTimeout: 90,
      maxAttempts: 4,
      deadLetterQueue: 'm-configure-dead',
      maxPayloadBytes: 100,
    });
  });

  it('sets, changes and removes the concurrency cap (null: no cap), keeping the rest', async () => {
    await createQueue('m-configure-cap', { maxAttempts: 4 });
    const capOf = async (config: Record<string, unknown>): Promise<unknown> =>
      (await api.ok<{ configureQueue: QueueJson }>(CONFIGURE, { name: 'm-configure-cap', config }))
        .configureQueue.config;
    expect(await capOf({ maxInFlight: 3 })).toMatchObject({ maxInFlight: 3, maxAttempts: 4 });
    expect(await capOf({ maxAttempts: 6 })).toMatchObject({ maxInFlight: 3, maxAttempts: 6 });
    await expectRefused('BAD_USER_INPUT', CONFIGURE, {
      name: 'm-configure-cap',
      config: { maxInFlight: 100_001, maxAttempts: 9 },
    });
    expect(await capOf({ maxInFlight: null })).toMatchObject({ maxInFlight: null, maxAttempts: 6 });
  });

  it('refuses a missing queue with QUEUE_NOT_FOUND and bad settings with BAD_USER_INPUT', async () => {
    await createQueue('m-configure-bad');
    await expectRefused('QUEUE_NOT_FOUND', CONFIGURE, {
      name: 'm-configure-nobody',
      config: { maxAttempts: 2 },
    });
    await expectRefused('BAD_USER_INPUT', CONFIGURE, {
      name: 'm-configure-bad',
      config: { retentionSeconds: 1 },
    });
    await expectRefused('BAD_USER_INPUT', CONFIGURE, {
      name: 'm-configure-bad',
      config: { backoffInitialSeconds: 1000 },
    });
  });
});

describe('deleteQueue', () => {
  it('deletes a queue with its messages, and answers false for a missing one', async () => {
    await createQueue('m-delete');
    await send('m-delete', { payload: 1 });
    const data = await api.ok<{ first: boolean; again: boolean }>(`mutation {
      first: deleteQueue(name: "m-delete")
      again: deleteQueue(name: "m-delete")
    }`);
    expect(data).toEqual({ first: true, again: false });
    const { rows } = await sql<{ n: string }>`
      SELECT count(*) AS n FROM holdline.messages WHERE queue = 'm-delete'`.execute(t.db);
    expect(rows[0]?.n).toBe('0');
  });
});

describe('send and sendBatch', () => {
  it('returns the committed message with every field', async () => {
    await createQueue('m-send');
    const data = await api.ok<{ send: MessageJson }>(SEND, {
      queue: 'm-send',
      message: { payload: { order: 7 }, priority: 3, headers: { trace: 'abc' } },
    });
    expect(data.send).toMatchObject({
      queue: 'm-send',
      payload: { order: 7 },
      headers: { trace: 'abc' },
      priority: 3,
      attempts: 0,
      state: 'READY',
      lastError: null,
      originQueue: null,
    });
    expect(await messageRow(data.send.id)).toMatchObject({ payload: { order: 7 }, priority: 3 });
  });

  it('accepts literal JSON payloads and delays with runAt', async () => {
    await createQueue('m-send-literal');
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const data = await api.ok<{ send: MessageJson }>(`mutation {
      send(queue: "m-send-literal", message: {
        payload: { list: [1, "two", true, null], nested: { x: 1.5 } }
        runAt: "${runAt}"
      }) { payload state runAt }
    }`);
    expect(data.send).toEqual({
      payload: { list: [1, 'two', true, null], nested: { x: 1.5 } },
      state: 'DELAYED',
      runAt,
    });
  });

  it('returns the live message for a repeated dedupKey', async () => {
    await createQueue('m-send-dedup');
    const first = await send('m-send-dedup', { payload: 1, dedupKey: 'k' });
    const second = await send('m-send-dedup', { payload: 2, dedupKey: 'k' });
    expect(second).toBe(first);
  });

  it('refuses a missing queue with QUEUE_NOT_FOUND, creating nothing', async () => {
    await expectRefused('QUEUE_NOT_FOUND', SEND, {
      queue: 'm-send-nobody',
      message: { payload: 1 },
    });
  });

  it('refuses a payload over maxPayloadBytes with PAYLOAD_TOO_LARGE', async () => {
    await createQueue('m-send-small', { maxPayloadBytes: 16 });
    await expectRefused('PAYLOAD_TOO_LARGE', SEND, {
      queue: 'm-send-small',
      message: { payload: 'x'.repeat(100) },
    });
  });

  it('refuses bad message fields with BAD_USER_INPUT', async () => {
    await createQueue('m-send-bad');
    for (const message of [
      { payload: 1, delaySeconds: 5, runAt: new Date().toISOString() },
      { payload: 1, delaySeconds: -1 },
      { payload: 1, headers: [1, 2] },
      { payload: 1, dedupKey: '' },
      { payload: 1, runAt: 'tomorrow' },
      { payload: 1, runAt: '2030-01-01T00:00:00' },
    ]) {
      await expectRefused('BAD_USER_INPUT', SEND, { queue: 'm-send-bad', message });
    }
  });

  it('sends a batch in order, atomically', async () => {
    await createQueue('m-batch');
    const data = await api.ok<{ sendBatch: MessageJson[] }>(SEND_BATCH, {
      queue: 'm-batch',
      messages: [{ payload: 'a' }, { payload: 'b' }, { payload: 'c' }],
    });
    expect(data.sendBatch.map((m) => m.payload)).toEqual(['a', 'b', 'c']);
    // one bad message: none of the batch is written
    await expectRefused('BAD_USER_INPUT', SEND_BATCH, {
      queue: 'm-batch',
      messages: [{ payload: 'd' }, { payload: 'e', priority: 1, delaySeconds: -5 }],
    });
    await expectRefused('BAD_USER_INPUT', SEND_BATCH, { queue: 'm-batch', messages: [] });
  });
});

describe('receive', () => {
  it('leases up to max messages in delivery order with receipts', async () => {
    await createQueue('m-receive');
    await send('m-receive', { payload: 'low' });
    await send('m-receive', { payload: 'high', priority: 9 });
    await send('m-receive', { payload: 'later' });
    const got = await receive('m-receive', { max: 2, visibilityTimeout: 120 });
    expect(got.map((d) => d.message.payload)).toEqual(['high', 'low']);
    expect(got.every((d) => d.message.state === 'LEASED' && d.message.attempts === 1)).toBe(true);
    const leaseMs = Date.parse(got[0]!.leaseExpiresAt) - Date.now();
    expect(leaseMs).toBeGreaterThan(100_000);
    expect(leaseMs).toBeLessThanOrEqual(121_000);
    // leased messages are not handed out twice
    expect((await receive('m-receive', { max: 10 })).map((d) => d.message.payload)).toEqual([
      'later',
    ]);
  });

  it('returns nothing from a paused queue, and delivers again after resume', async () => {
    await createQueue('m-pause');
    await send('m-pause', { payload: 1 });
    const paused = await api.ok<{ pauseQueue: QueueJson }>(
      `mutation { pauseQueue(name: "m-pause") { name paused } }`,
    );
    expect(paused.pauseQueue).toEqual({ name: 'm-pause', paused: true });
    expect(await receive('m-pause')).toEqual([]);
    const resumed = await api.ok<{ resumeQueue: QueueJson }>(
      `mutation { resumeQueue(name: "m-pause") { paused } }`,
    );
    expect(resumed.resumeQueue.paused).toBe(false);
    expect(await receive('m-pause')).toHaveLength(1);
  });

  it('refuses bad arguments with BAD_USER_INPUT and a missing queue with QUEUE_NOT_FOUND', async () => {
    await createQueue('m-receive-bad');
    await send('m-receive-bad', { payload: 1 });
    await expectRefused('QUEUE_NOT_FOUND', RECEIVE, { queue: 'm-receive-nobody' });
    await expectRefused('BAD_USER_INPUT', RECEIVE, { queue: 'm-receive-bad', max: 0 });
    await expectRefused('BAD_USER_INPUT', RECEIVE, { queue: 'm-receive-bad', max: 1001 });
    await expectRefused('BAD_USER_INPUT', RECEIVE, {
      queue: 'm-receive-bad',
      visibilityTimeout: 0,
    });
    await expectRefused('BAD_USER_INPUT', RECEIVE, { queue: 'm-receive-bad', waitSeconds: 21 });
    await expectRefused('BAD_USER_INPUT', RECEIVE, { queue: 'm-receive-bad', waitSeconds: -1 });
  });
});

describe('ack and ackBatch', () => {
  it('deletes an acked message; acking again is LEASE_LOST saying it is gone', async () => {
    await createQueue('m-ack');
    const id = await send('m-ack', { payload: 1 });
    const [d] = await receive('m-ack');
    expect((await api.ok<{ ack: boolean }>(ACK, { receipt: d!.receipt })).ack).toBe(true);
    expect(await messageRow(id)).toBeUndefined();
    await expectRefused('LEASE_LOST', ACK, { receipt: d!.receipt });
    const again = await api.request(ACK, { receipt: d!.receipt });
    expect(again.errors?.[0]?.message).toBe(
      "this receipt's message is gone: it was acknowledged already, or deleted (purged, or its queue deleted); nothing was changed",
    );
  });

  it('refuses a stale receipt after the lease is re-taken, leaving the new lease alone', async () => {
    await createQueue('m-ack-stale');
    const id = await send('m-ack-stale', { payload: 1 });
    const [old] = await receive('m-ack-stale');
    await api.ok(NACK, { receipt: old!.receipt, delaySeconds: 0 });
    const [fresh] = await receive('m-ack-stale');
    expect(fresh!.message.id).toBe(id);
    await expectRefused('LEASE_LOST', ACK, { receipt: old!.receipt });
    const stale = await api.request(ACK, { receipt: old!.receipt });
    expect(stale.errors?.[0]?.message).toContain(
      'the message was delivered again under another receipt',
    );
    expect(await messageRow(id)).toMatchObject({ attempts: 2 });
    expect((await api.ok<{ ack: boolean }>(ACK, { receipt: fresh!.receipt })).ack).toBe(true);
  });

  it('refuses a malformed receipt with BAD_USER_INPUT', async () => {
    await expectRefused('BAD_USER_INPUT', ACK, { receipt: 'not-a-receipt' });
  });

  it('acks a batch and counts only the receipts whose lease was valid', async () => {
    await createQueue('m-ack-batch');
    for (let i = 0; i < 3; i++) await send('m-ack-batch', { payload: i });
    const got = await receive('m-ack-batch', { max: 3 });
    await api.ok(ACK, { receipt: got[0]!.receipt });
    const data = await api.ok<{ ackBatch: number }>(
      `mutation ($r: [String!]!) { ackBatch(receipts: $r) }`,
      { r: got.map((d) => d.receipt) },
    );
    expect(data.ackBatch).toBe(2);
    const { rows } = await sql<{ n: string }>`
      SELECT count(*) AS n FROM holdline.messages WHERE queue = 'm-ack-batch'`.execute(t.db);
    expect(rows[0]?.n).toBe('0');
  });

  it('refuses an ackBatch with a malformed receipt before deleting anything', async () => {
    await createQueue('m-ack-batch-bad');
    await send('m-ack-batch-bad', { payload: 1 });
    const [d] = await receive('m-ack-batch-bad');
    await expectRefused('BAD_USER_INPUT', `mutation ($r: [String!]!) { ackBatch(receipts: $r) }`, {
      r: [d!.receipt, 'garbage'],
    });
    await expectRefused('BAD_USER_INPUT', `mutation { ackBatch(receipts: []) }`);
  });
});

describe('nack', () => {
  it('makes the message deliverable after delaySeconds, with the error kept', async () => {
    await createQueue('m-nack');
    const id = await send('m-nack', { payload: 1 });
    const [d] = await receive('m-nack');
    const data = await api.ok<{ nack: boolean }>(NACK, {
      receipt: d!.receipt,
      delaySeconds: 600,
      error: 'downstream timeout',
    });
    expect(data.nack).toBe(true);
    const message = await api.ok<{ message: MessageJson | null }>(
      `query ($id: ID!) { message(id: $id) { state attempts lastError } }`,
      { id },
    );
    expect(message.message).toEqual({
      state: 'DELAYED',
      attempts: 1,
      lastError: 'downstream timeout',
    });
    await expectRefused('LEASE_LOST', NACK, { receipt: d!.receipt });
  });

  it('dead-letters on the last attempt, and redrive brings it back', async () => {
    await createQueue('m-redrive', { maxAttempts: 1 });
    const id = await send('m-redrive', { payload: 'x' });
    const [d] = await receive('m-redrive');
    await api.ok(NACK, { receipt: d!.receipt, error: 'fatal' });
    expect(await messageRow(id)).toMatchObject({
      queue: 'm-redrive.dlq',
      origin_queue: 'm-redrive',
      last_error: 'fatal',
    });
    const data = await api.ok<{ redrive: number }>(`mutation { redrive(queue: "m-redrive") }`);
    expect(data.redrive).toBe(1);
    expect(await messageRow(id)).toMatchObject({ queue: 'm-redrive', attempts: 0 });
    expect((await receive('m-redrive')).map((x) => x.message.id)).toEqual([id]);
  });

  it('refuses bad arguments with BAD_USER_INPUT', async () => {
    await createQueue('m-nack-bad');
    await send('m-nack-bad', { payload: 1 });
    const [d] = await receive('m-nack-bad');
    await expectRefused('BAD_USER_INPUT', NACK, { receipt: d!.receipt, delaySeconds: -1 });
    await expectRefused('BAD_USER_INPUT', NACK, { receipt: 'x.y' });
  });
});

describe('extendLease', () => {
  it('moves the lease end and keeps the receipt', async () => {
    await createQueue('m-extend');
    await send('m-extend', { payload: 1 });
    const [d] = await receive('m-extend', { visibilityTimeout: 5 });
    const data = await api.ok<{ extendLease: DeliveryJson }>(EXTEND, {
      receipt: d!.receipt,
      seconds: 3600,
    });
    expect(data.extendLease.receipt).toBe(d!.receipt);
    expect(Date.parse(data.extendLease.leaseExpiresAt) - Date.now()).toBeGreaterThan(3_500_000);
  });

  it('refuses a lost lease with LEASE_LOST and bad seconds with BAD_USER_INPUT', async () => {
    await createQueue('m-extend-bad');
    await send('m-extend-bad', { payload: 1 });
    const [d] = await receive('m-extend-bad');
    await expectRefused('BAD_USER_INPUT', EXTEND, { receipt: d!.receipt, seconds: 0 });
    await expectRefused('BAD_USER_INPUT', EXTEND, { receipt: d!.receipt, seconds: 43_201 });
    await api.ok(ACK, { receipt: d!.receipt });
    await expectRefused('LEASE_LOST', EXTEND, { receipt: d!.receipt, seconds: 60 });
  });
});

describe('redrive and purge', () => {
  it('refuse a missing queue with QUEUE_NOT_FOUND', async () => {
    await expectRefused('QUEUE_NOT_FOUND', `mutation { redrive(queue: "m-nobody") }`);
    await expectRefused('QUEUE_NOT_FOUND', `mutation { purge(queue: "m-nobody") }`);
    await expectRefused('QUEUE_NOT_FOUND', `mutation { pauseQueue(name: "m-nobody") { name } }`);
    await expectRefused('QUEUE_NOT_FOUND', `mutation { resumeQueue(name: "m-nobody") { name } }`);
  });

  it('redrive refuses a bad max with BAD_USER_INPUT', async () => {
    await createQueue('m-redrive-bad');
    await expectRefused('BAD_USER_INPUT', `mutation { redrive(queue: "m-redrive-bad", max: 0) }`);
  });

  it('purge deletes every message, leased ones included, and counts them', async () => {
    await createQueue('m-purge');
    for (let i = 0; i < 3; i++) await send('m-purge', { payload: i });
    const [d] = await receive('m-purge');
    const data = await api.ok<{ purge: number }>(`mutation { purge(queue: "m-purge") }`);
    expect(data.purge).toBe(3);
    expect(await api.errorCode(ACK, { receipt: d!.receipt })).toBe('LEASE_LOST');
  });
});

describe('bindQueue, unbindQueue and publish', () => {
  it('copies a published message into every queue bound to a matching pattern', async () => {
    await createQueue('m-orders-all');
    await createQueue('m-orders-created');
    await createQueue('m-invoices');
    const bound = await api.ok<Record<string, boolean>>(`mutation {
      a: bindQueue(queue: "m-orders-all", pattern: "orders.#")
      b: bindQueue(queue: "m-orders-created", pattern: "orders.*.created")
      again: bindQueue(queue: "m-orders-created", pattern: "orders.*.created")
      c: bindQueue(queue: "m-invoices", pattern: "invoices.*")
    }`);
    expect(bound).toEqual({ a: true, b: true, again: true, c: true });
    const data = await api.ok<{ publish: MessageJson[] }>(`mutation {
      publish(topic: "orders.eu.created", message: { payload: { id: 1 } }) { queue payload }
    }`);
    expect(data.publish).toEqual([
      { queue: 'm-orders-all', payload: { id: 1 } },
      { queue: 'm-orders-created', payload: { id: 1 } },
    ]);
    const unrouted = await api.ok<{ publish: MessageJson[] }>(
      `mutation { publish(topic: "nobody.listens", message: { payload: 1 }) { id } }`,
    );
    expect(unrouted.publish).toEqual([]);
  });

  it('unbinds, answering false for a binding that does not exist', async () => {
    await createQueue('m-unbind');
    await api.ok(`mutation { bindQueue(queue: "m-unbind", pattern: "u.*") }`);
    const data = await api.ok<Record<string, boolean>>(`mutation {
      first: unbindQueue(queue: "m-unbind", pattern: "u.*")
      again: unbindQueue(queue: "m-unbind", pattern: "u.*")
    }`);
    expect(data).toEqual({ first: true, again: false });
    const queue = await api.ok<{ queue: QueueJson | null }>(
      `{ queue(name: "m-unbind") { bindings } }`,
    );
    expect(queue.queue?.bindings).toEqual([]);
  });

  it('refuses a missing queue with QUEUE_NOT_FOUND and bad patterns and topics with BAD_USER_INPUT', async () => {
    await createQueue('m-bind-bad');
    await expectRefused(
      'QUEUE_NOT_FOUND',
      `mutation { bindQueue(queue: "m-nobody", pattern: "a.*") }`,
    );
    await expectRefused(
      'BAD_USER_INPUT',
      `mutation { bindQueue(queue: "m-bind-bad", pattern: "a..b") }`,
    );
    await expectRefused(
      'BAD_USER_INPUT',
      `mutation { publish(topic: "orders.*", message: { payload: 1 }) { id } }`,
    );
  });
});

describe('schedules', () => {
  const CREATE_SCHEDULE = `mutation ($name: String!, $cron: String!, $timezone: String,
      $queue: String!, $message: SendInput!, $catchUp: CatchUp, $catchUpMax: Int) {
    createSchedule(name: $name, cron: $cron, timezone: $timezone, queue: $queue,
                   message: $message, catchUp: $catchUp, catchUpMax: $catchUpMax) {
      name cron timezone queue payload headers priority groupKey catchUp catchUpMax paused
      nextTickAt lastTickAt lastMessageId
    }
  }`;

  it('creates, lists, pauses, resumes and deletes a schedule', async () => {
    await createQueue('m-sched');
    const created = await api.ok<{ createSchedule: Record<string, unknown> }>(CREATE_SCHEDULE, {
      name: 'm-nightly',
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      queue: 'm-sched',
      message: { payload: { report: 'daily' }, priority: 2, headers: { team: 'ops' } },
    });
    expect(created.createSchedule).toMatchObject({
      name: 'm-nightly',
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      queue: 'm-sched',
      payload: { report: 'daily' },
      headers: { team: 'ops' },
      priority: 2,
      groupKey: null,
      catchUp: 'LATEST',
      catchUpMax: 100,
      paused: false,
      lastTickAt: null,
      lastMessageId: null,
    });
    // 03:00 in Berlin is 01:00 or 02:00 UTC, depending on the season.
    expect(new Date(created.createSchedule.nextTickAt as string).getUTCHours()).toBeLessThan(3);
    const listed = await api.ok<{ schedules: { name: string }[] }>(
      `{ schedules(queue: "m-sched") { name } }`,
    );
    expect(listed.schedules).toEqual([{ name: 'm-nightly' }]);
    const paused = await api.ok<{ pauseSchedule: { paused: boolean } }>(
      `mutation { pauseSchedule(name: "m-nightly") { paused } }`,
    );
    expect(paused.pauseSchedule.paused).toBe(true);
    const resumed = await api.ok<{ resumeSchedule: { paused: boolean } }>(
      `mutation { resumeSchedule(name: "m-nightly") { paused } }`,
    );
    expect(resumed.resumeSchedule.paused).toBe(false);
    expect(await api.ok(`mutation { deleteSchedule(name: "m-nightly") }`)).toEqual({
      deleteSchedule: true,
    });
    expect(await api.ok(`mutation { deleteSchedule(name: "m-nightly") }`)).toEqual({
      deleteSchedule: false,
    });
  });

  it('refuses bad input, a missing queue, a taken name and a missing schedule, changing nothing', async () => {
    await createQueue('m-sched-bad');
    const base = {
      name: 'm-bad-sched',
      cron: '0 * * * *',
      queue: 'm-sched-bad',
      message: { payload: 1 },
    };
    await expectRefused('BAD_USER_INPUT', CREATE_SCHEDULE, { ...base, cron: 'soon' });
    await expectRefused('BAD_USER_INPUT', CREATE_SCHEDULE, { ...base, cron: '0 0 30 2 *' });
    await expectRefused('BAD_USER_INPUT', CREATE_SCHEDULE, { ...base, timezone: 'Nowhere/City' });
    await expectRefused('BAD_USER_INPUT', CREATE_SCHEDULE, { ...base, catchUpMax: 0 });
    await expectRefused('BAD_USER_INPUT', CREATE_SCHEDULE, {
      ...base,
      message: { payload: 1, delaySeconds: 10 },
    });
    await expectRefused('QUEUE_NOT_FOUND', CREATE_SCHEDULE, { ...base, queue: 'm-sched-nobody' });
    await api.ok(CREATE_SCHEDULE, base);
    await expectRefused('SCHEDULE_EXISTS', CREATE_SCHEDULE, base);
    await expectRefused(
      'SCHEDULE_NOT_FOUND',
      `mutation { pauseSchedule(name: "m-nobody") { name } }`,
    );
  });
});
