import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { databaseSnapshot, startService } from './harness.ts';
import type { GraphQLService, MessageJson } from './harness.ts';

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

const BROWSE = `query ($queue: String!, $state: MessageState, $filter: MessageFilter, $first: Int, $after: ID) {
  messages(queue: $queue, state: $state, filter: $filter, first: $first, after: $after) {
    id state payload groupKey dedupKey leaseExpiresAt deadLetteredAt
  }
}`;
const COUNT = `query ($queue: String!, $state: MessageState, $filter: MessageFilter, $max: Int) {
  messageCount(queue: $queue, state: $state, filter: $filter, max: $max)
}`;

async function send(queue: string, message: Record<string, unknown>): Promise<string> {
  const data = await api.ok<{ send: { id: string } }>(
    `mutation ($queue: String!, $message: SendInput!) { send(queue: $queue, message: $message) { id } }`,
    { queue, message },
  );
  return data.send.id;
}

async function browse(
  queue: string,
  filter: Record<string, unknown> | null,
  state?: string,
): Promise<string[]> {
  const data = await api.ok<{ messages: MessageJson[] }>(BROWSE, { queue, filter, state });
  return data.messages.map((m) => m.id);
}

async function count(
  queue: string,
  filter: Record<string, unknown> | null,
  extra: { state?: string; max?: number } = {},
): Promise<number> {
  const data = await api.ok<{ messageCount: number }>(COUNT, { queue, filter, ...extra });
  return data.messageCount;
}

/** Sets a message's created_at, which a send always takes from its transaction's start. */
async function setCreatedAt(id: string, at: string): Promise<void> {
  await sql`UPDATE holdline.messages SET created_at = ${at}::timestamptz WHERE id = ${id}::bigint`.execute(
    t.db,
  );
}

describe('Query.messages and Query.messageCount with a filter', () => {
  const QUEUE = 'filters';
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    await api.ok(`mutation { createQueue(name: "${QUEUE}") { name } }`);
    ids.euA = await send(QUEUE, {
      payload: { region: 'eu', kind: 'order', n: 1 },
      headers: { tenant: 'acme', trace: 'x' },
      groupKey: 'g1',
    });
    ids.euB = await send(QUEUE, {
      payload: { region: 'eu', kind: 'refund', n: 2 },
      headers: { tenant: 'globex' },
      dedupKey: 'refund-2',
    });
    ids.us = await send(QUEUE, { payload: { region: 'us', kind: 'order', n: 3 } });
    ids.delayed = await send(QUEUE, {
      payload: { region: 'eu', kind: 'order', n: 4 },
      delaySeconds: 600,
      groupKey: 'g2',
    });
    ids.scalar = await send(QUEUE, { payload: 'just text' });
    await setCreatedAt(ids.euA, '2030-01-01T00:00:00Z');
    await setCreatedAt(ids.euB, '2030-01-02T00:00:00Z');
    await setCreatedAt(ids.us, '2030-01-03T00:00:00Z');
    await setCreatedAt(ids.delayed, '2030-01-04T00:00:00Z');
    await setCreatedAt(ids.scalar, '2030-01-05T00:00:00Z');
  });

  it('matches payloads by JSON containment, nested values included', async () => {
    expect(await browse(QUEUE, { payload: { region: 'eu' } })).toEqual([
      ids.euA,
      ids.euB,
      ids.delayed,
    ]);
    expect(await browse(QUEUE, { payload: { region: 'eu', kind: 'order' } })).toEqual([
      ids.euA,
      ids.delayed,
    ]);
    expect(await browse(QUEUE, { payload: { region: 'mars' } })).toEqual([]);
    expect(await count(QUEUE, { payload: { kind: 'order' } })).toBe(3);
  });

  it('matches headers by containment; a message without headers never matches', async () => {
    expect(await browse(QUEUE, { headers: { tenant: 'acme' } })).toEqual([ids.euA]);
    expect(await browse(QUEUE, { headers: {} })).toEqual([ids.euA, ids.euB]);
  });

  it('matches group and dedup keys exactly', async () => {
    expect(await browse(QUEUE, { groupKey: 'g1' })).toEqual([ids.euA]);
    expect(await browse(QUEUE, { groupKey: 'g' })).toEqual([]);
    expect(await browse(QUEUE, { dedupKey: 'refund-2' })).toEqual([ids.euB]);
    const data = await api.ok<{ messages: MessageJson[] }>(BROWSE, {
      queue: QUEUE,
      filter: { dedupKey: 'refund-2' },
    });
    expect(data.messages[0]).toMatchObject({ dedupKey: 'refund-2', groupKey: null });
  });

  it('bounds the send time: createdAfter inclusive, createdBefore exclusive', async () => {
    expect(
      await browse(QUEUE, {
        createdAfter: '2030-01-02T00:00:00Z',
        createdBefore: '2030-01-04T00:00:00Z',
      }),
    ).toEqual([ids.euB, ids.us]);
    expect(await count(QUEUE, { createdAfter: '2030-01-04T00:00:00Z' })).toBe(2);
    expect(await count(QUEUE, { createdBefore: '2030-01-01T00:00:00Z' })).toBe(0);
  });

  it('combines the filter with the state and every part with the others', async () => {
    expect(await browse(QUEUE, { payload: { region: 'eu' } }, 'DELAYED')).toEqual([ids.delayed]);
    expect(await browse(QUEUE, { payload: { region: 'eu' } }, 'READY')).toEqual([ids.euA, ids.euB]);
    expect(
      await count(QUEUE, { payload: { region: 'eu' }, headers: { tenant: 'globex' } }, {}),
    ).toBe(1);
    expect(await count(QUEUE, null, { state: 'LEASED' })).toBe(0);
    expect(await count(QUEUE, null)).toBe(5);
  });

  it('pages a filtered list by id', async () => {
    const first = await api.ok<{ messages: MessageJson[] }>(BROWSE, {
      queue: QUEUE,
      filter: { payload: { region: 'eu' } },
      first: 2,
    });
    expect(first.messages.map((m) => m.id)).toEqual([ids.euA, ids.euB]);
    const next = await api.ok<{ messages: MessageJson[] }>(BROWSE, {
      queue: QUEUE,
      filter: { payload: { region: 'eu' } },
      first: 2,
      after: ids.euB,
    });
    expect(next.messages.map((m) => m.id)).toEqual([ids.delayed]);
  });

  it('stops counting at max', async () => {
    expect(await count(QUEUE, null, { max: 3 })).toBe(3);
    expect(await count(QUEUE, null, { max: 1_000_000 })).toBe(5);
  });

  it('shows a leased message with its lease expiry, and no expiry when it is not leased', async () => {
    await api.ok(`mutation { createQueue(name: "filters-lease") { name } }`);
    const id = await send('filters-lease', { payload: { leased: true } });
    const received = await api.ok<{ receive: { leaseExpiresAt: string }[] }>(
      `mutation { receive(queue: "filters-lease", visibilityTimeout: 60) { leaseExpiresAt } }`,
    );
    await send('filters-lease', { payload: { leased: false } });
    const data = await api.ok<{ messages: MessageJson[] & { leaseExpiresAt: string | null }[] }>(
      BROWSE,
      { queue: 'filters-lease' },
    );
    expect(data.messages).toMatchObject([
      { id, state: 'LEASED', leaseExpiresAt: received.receive[0]!.leaseExpiresAt },
      { state: 'READY', leaseExpiresAt: null, deadLetteredAt: null },
    ]);
  });
});

describe('filter validation', () => {
  beforeAll(async () => {
    await api.ok(`mutation { createQueue(name: "filters-bad") { name } }`);
  });

  it.each([
    ['a payload that is not an object', { payload: [1, 2] }],
    ['a payload that is a string', { payload: 'eu' }],
    ['headers that are a number', { headers: 7 }],
    ['an empty group key', { groupKey: '' }],
    ['a dedup key over 256 characters', { dedupKey: 'k'.repeat(257) }],
    [
      'a reversed time range',
      { createdAfter: '2030-01-02T00:00:00Z', createdBefore: '2030-01-01T00:00:00Z' },
    ],
  ])('refuses %s with BAD_USER_INPUT, in messages and messageCount', async (_what, filter) => {
    const before = await databaseSnapshot(t);
    expect(await api.errorCode(BROWSE, { queue: 'filters-bad', filter })).toBe('BAD_USER_INPUT');
    expect(await api.errorCode(COUNT, { queue: 'filters-bad', filter })).toBe('BAD_USER_INPUT');
    expect(await databaseSnapshot(t)).toBe(before);
  });

  it('refuses a count bound out of range', async () => {
    expect(await api.errorCode(COUNT, { queue: 'filters-bad', max: 0 })).toBe('BAD_USER_INPUT');
    expect(await api.errorCode(COUNT, { queue: 'filters-bad', max: 1_000_001 })).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('answers QUEUE_NOT_FOUND for a queue nobody created', async () => {
    expect(await api.errorCode(COUNT, { queue: 'filters-nobody' })).toBe('QUEUE_NOT_FOUND');
    expect(await api.errorCode(BROWSE, { queue: 'filters-nobody', filter: {} })).toBe(
      'QUEUE_NOT_FOUND',
    );
  });
});

describe('Query.viewer', () => {
  it('with authentication off: not authenticated, and everything allowed', async () => {
    const data = await api.ok<{ viewer: unknown }>(`{
      viewer { authenticated scopes tokenName
               admin: allows(action: ADMIN, queue: "anything") }
    }`);
    expect(data.viewer).toEqual({
      authenticated: false,
      scopes: ['admin:*'],
      tokenName: null,
      admin: true,
    });
  });
});
