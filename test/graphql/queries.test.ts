import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startService } from './harness.ts';
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
  createQueue(name: $name, config: $config) { name }
}`;
const SEND = `mutation ($queue: String!, $message: SendInput!) {
  send(queue: $queue, message: $message) { id state }
}`;

async function createQueue(name: string, config?: Record<string, unknown>): Promise<void> {
  await api.ok(CREATE, { name, config });
}

async function send(queue: string, message: Record<string, unknown>): Promise<string> {
  const data = await api.ok<{ send: { id: string } }>(SEND, { queue, message });
  return data.send.id;
}

describe('Query.queues and Query.queue', () => {
  it('lists queues with config, stats and bindings', async () => {
    await createQueue('q-list-a', { visibilityTimeout: 45, maxAttempts: 3 });
    await createQueue('q-list-b');
    await send('q-list-a', { payload: 1 });
    await send('q-list-a', { payload: 2, delaySeconds: 600 });
    await api.ok(`mutation { bindQueue(queue: "q-list-a", pattern: "list.*") }`);

    const data = await api.ok<{ queues: QueueJson[] }>(`{
      queues {
        name paused createdAt bindings
        config { visibilityTimeout maxAttempts deadLetterQueue backoffInitialSeconds
                 backoffMaxSeconds retentionSeconds maxPayloadBytes }
        stats { queue ready delayed leased total oldestReadyAgeSeconds }
      }
    }`);
    const a = data.queues.find((q) => q.name === 'q-list-a');
    const b = data.queues.find((q) => q.name === 'q-list-b');
    expect(a).toMatchObject({
      paused: false,
      bindings: ['list.*'],
      config: {
        visibilityTimeout: 45,
        maxAttempts: 3,
        deadLetterQueue: 'q-list-a.dlq',
        backoffInitialSeconds: 1,
        backoffMaxSeconds: 300,
        retentionSeconds: 1_209_600,
        maxPayloadBytes: 1_048_576,
      },
      stats: { queue: 'q-list-a', ready: 1, delayed: 1, leased: 0, total: 2 },
    });
    expect(a?.stats?.oldestReadyAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(Number.isNaN(Date.parse(a?.createdAt ?? ''))).toBe(false);
    expect(b).toMatchObject({
      bindings: [],
      stats: { ready: 0, delayed: 0, leased: 0, total: 0, oldestReadyAgeSeconds: null },
    });
    const names = data.queues.map((q) => q.name);
    expect(names).toEqual([...names].sort());
  });

  it('returns one queue by name, and null for a name nobody created', async () => {
    await createQueue('q-one');
    const data = await api.ok<{ found: QueueJson | null; missing: QueueJson | null }>(`{
      found: queue(name: "q-one") { name stats { total } }
      missing: queue(name: "q-nobody") { name }
    }`);
    expect(data.found).toEqual({ name: 'q-one', stats: { total: 0 } });
    expect(data.missing).toBeNull();
  });

  it('refuses a malformed queue name with BAD_USER_INPUT', async () => {
    expect(await api.errorCode(`{ queue(name: "bad name!") { name } }`)).toBe('BAD_USER_INPUT');
  });
});

describe('Query.message', () => {
  it('reports a ready message with its place in line', async () => {
    await createQueue('q-position');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await send('q-position', { payload: { i } }));
    const data = await api.ok<{ message: MessageJson | null }>(
      `query ($id: ID!) { message(id: $id) {
        id queue payload headers priority attempts state runAt createdAt lastError originQueue
        position estimatedWaitSeconds
      } }`,
      { id: ids[2] },
    );
    expect(data.message).toMatchObject({
      id: ids[2],
      queue: 'q-position',
      payload: { i: 2 },
      headers: null,
      priority: 0,
      attempts: 0,
      state: 'READY',
      lastError: null,
      originQueue: null,
      position: 2,
      // nothing was delivered from this queue yet: no rate to estimate from
      estimatedWaitSeconds: null,
    });
  });

  it('computes position for messages that a mutation returned, when asked', async () => {
    await createQueue('q-position-send');
    await send('q-position-send', { payload: 'first' });
    const data = await api.ok<{ send: MessageJson }>(
      `mutation { send(queue: "q-position-send", message: { payload: "second", priority: -1 }) {
        state position
      } }`,
    );
    expect(data.send).toEqual({ state: 'READY', position: 1 });
    const leased = await api.ok<{ receive: DeliveryJson[] }>(
      `mutation { receive(queue: "q-position-send") { message { state position estimatedWaitSeconds } } }`,
    );
    // a leased message is not in line
    expect(leased.receive).toEqual([
      { message: { state: 'LEASED', position: null, estimatedWaitSeconds: null } },
    ]);
  });

  it("says why a message waits, and counts a queue's waiting messages by reason", async () => {
    await createQueue('q-why', { maxInFlight: 1 });
    await send('q-why', { payload: 'first' });
    const second = await send('q-why', { payload: 'second' });
    const later = await send('q-why', { payload: 'later', delaySeconds: 600 });
    await api.ok(`mutation { receive(queue: "q-why") { receipt } }`);
    const why = async (id: string): Promise<unknown> =>
      (
        await api.ok<{ message: unknown }>(
          `query ($id: ID!) { message(id: $id) { state waitingReason position nextEligibleAt } }`,
          { id },
        )
      ).message;
    expect(await why(second)).toEqual({
      state: 'READY',
      waitingReason: 'CONCURRENCY_CAP',
      position: 0,
      nextEligibleAt: null,
    });
    expect(await why(later)).toMatchObject({ state: 'DELAYED', waitingReason: 'DELAYED' });
    const stats = await api.ok<{ queue: { stats: { waiting: unknown } } }>(
      `{ queue(name: "q-why") { stats { waiting { ready delayed backingOff groupHeadInFlight
           queuePaused concurrencyCap rateLimited } } } }`,
    );
    expect(stats.queue.stats.waiting).toEqual({
      ready: 0,
      delayed: 1,
      backingOff: 0,
      groupHeadInFlight: 0,
      queuePaused: 0,
      concurrencyCap: 1,
      rateLimited: 0,
    });
  });

  it('tells its group and dedup keys, its lease while leased, and when it died once dead', async () => {
    await createQueue('q-msg-keys', { maxAttempts: 1 });
    const id = await send('q-msg-keys', { payload: 1, groupKey: 'g-1', dedupKey: 'd-1' });
    const FIELDS = `{ message(id: "${id}") { groupKey dedupKey leaseExpiresAt deadLetteredAt } }`;
    expect((await api.ok<{ message: unknown }>(FIELDS)).message).toEqual({
      groupKey: 'g-1',
      dedupKey: 'd-1',
      leaseExpiresAt: null,
      deadLetteredAt: null,
    });
    const got = await api.ok<{ receive: DeliveryJson[] }>(
      `mutation { receive(queue: "q-msg-keys") { receipt leaseExpiresAt } }`,
    );
    const leased = await api.ok<{ message: { leaseExpiresAt: string } }>(FIELDS);
    expect(leased.message.leaseExpiresAt).toBe(got.receive[0]!.leaseExpiresAt);
    await api.ok(`mutation ($r: String!) { nack(receipt: $r, error: "boom") }`, {
      r: got.receive[0]!.receipt,
    });
    const dead = await api.ok<{ message: { leaseExpiresAt: null; deadLetteredAt: string } }>(
      FIELDS,
    );
    expect(dead.message.leaseExpiresAt).toBeNull();
    expect(Date.parse(dead.message.deadLetteredAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('returns null for an id that does not exist', async () => {
    const data = await api.ok<{ message: unknown }>(`{ message(id: "999999999") { id } }`);
    expect(data.message).toBeNull();
  });

  it('refuses an id that is not a message id with BAD_USER_INPUT', async () => {
    expect(await api.errorCode(`{ message(id: "abc") { id } }`)).toBe('BAD_USER_INPUT');
  });
});

describe('Query.messages', () => {
  const PAGE = `query ($queue: String!, $state: MessageState, $first: Int, $after: ID) {
    messages(queue: $queue, state: $state, first: $first, after: $after) { id state payload }
  }`;

  it('pages through a queue in send order', async () => {
    await createQueue('q-browse');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await send('q-browse', { payload: i }));
    const first = await api.ok<{ messages: MessageJson[] }>(PAGE, { queue: 'q-browse', first: 2 });
    expect(first.messages.map((m) => m.id)).toEqual(ids.slice(0, 2));
    const second = await api.ok<{ messages: MessageJson[] }>(PAGE, {
      queue: 'q-browse',
      first: 2,
      after: first.messages[1]!.id,
    });
    expect(second.messages.map((m) => m.id)).toEqual(ids.slice(2, 4));
    const rest = await api.ok<{ messages: MessageJson[] }>(PAGE, {
      queue: 'q-browse',
      after: second.messages[1]!.id,
    });
    expect(rest.messages.map((m) => m.payload)).toEqual([4]);
  });

  it('filters by state', async () => {
    await createQueue('q-browse-state');
    const ready = await send('q-browse-state', { payload: 'ready' });
    const delayed = await send('q-browse-state', { payload: 'delayed', delaySeconds: 3600 });
    const leased = await send('q-browse-state', { payload: 'leased', priority: 5 });
    await api.ok(`mutation { receive(queue: "q-browse-state") { receipt } }`);
    for (const [state, id] of [
      ['READY', ready],
      ['DELAYED', delayed],
      ['LEASED', leased],
    ] as const) {
      const data = await api.ok<{ messages: MessageJson[] }>(PAGE, {
        queue: 'q-browse-state',
        state,
      });
      expect(data.messages.map((m) => [m.id, m.state])).toEqual([[id, state]]);
    }
    const all = await api.ok<{ messages: MessageJson[] }>(PAGE, { queue: 'q-browse-state' });
    expect(all.messages).toHaveLength(3);
  });

  it('shows dead letters in the dead-letter queue', async () => {
    await createQueue('q-browse-dlq', { maxAttempts: 1 });
    await send('q-browse-dlq', { payload: 'doomed' });
    const got = await api.ok<{ receive: DeliveryJson[] }>(
      `mutation { receive(queue: "q-browse-dlq") { receipt } }`,
    );
    await api.ok(`mutation ($r: String!) { nack(receipt: $r, error: "boom") }`, {
      r: got.receive[0]!.receipt,
    });
    const data = await api.ok<{ messages: MessageJson[] }>(
      `{ messages(queue: "q-browse-dlq.dlq") { payload lastError originQueue attempts } }`,
    );
    expect(data.messages).toEqual([
      { payload: 'doomed', lastError: 'boom', originQueue: 'q-browse-dlq', attempts: 1 },
    ]);
  });

  it('refuses a missing queue, a bad page size and a bad cursor', async () => {
    await createQueue('q-browse-bad');
    expect(await api.errorCode(PAGE, { queue: 'q-browse-nobody' })).toBe('QUEUE_NOT_FOUND');
    expect(await api.errorCode(PAGE, { queue: 'q-browse-bad', first: 0 })).toBe('BAD_USER_INPUT');
    expect(await api.errorCode(PAGE, { queue: 'q-browse-bad', first: 1001 })).toBe(
      'BAD_USER_INPUT',
    );
    expect(await api.errorCode(PAGE, { queue: 'q-browse-bad', after: 'x' })).toBe('BAD_USER_INPUT');
  });

  it('takes no lease while browsing', async () => {
    await createQueue('q-browse-readonly');
    await send('q-browse-readonly', { payload: 1 });
    await api.ok(PAGE, { queue: 'q-browse-readonly' });
    const { rows } = await sql<{ leased: string }>`
      SELECT count(*) FILTER (WHERE lease_token IS NOT NULL) AS leased
      FROM holdline.messages WHERE queue = 'q-browse-readonly'`.execute(t.db);
    expect(rows[0]?.leased).toBe('0');
  });
});
