import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScopeAction } from '../../src/auth/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { databaseSnapshot } from '../graphql/harness.ts';
import { onlyErrorCode, startSecureService, subscribeSse, subscribeWs } from './harness.ts';
import type { SecureService, TokenSubscription } from './harness.ts';

// Every operation of the contract, refused without a token, with a wrong or revoked one, and
// with one whose scopes miss exactly what it needs; and allowed with a token scoped to just that.

let t: TestDatabase;
let svc: SecureService;
let revoked: string;
beforeAll(async () => {
  t = await createTestDatabase();
  svc = await startSecureService(t, { pollIntervalMs: 100 });
  revoked = await svc.token('revoked', 'admin');
  // Used once, so it is cached as valid: revocation must still take effect at once.
  await svc.ok(revoked, `{ queues { name } }`);
  expect(await svc.control.revoke('revoked')).toBe(true);
});
afterAll(async () => {
  await svc.stop();
  await t.drop();
});

/** A secret of the right shape that no token has. */
const WRONG = `hl_${'A'.repeat(43)}`;

let seq = 0;
const unique = (prefix: string): string => `${prefix}.${++seq}`;

/** One operation, what it needs, and how to make fresh variables for one attempt. */
interface Case {
  name: string;
  action: ScopeAction;
  /** The queue pattern a token needs `action` on; vars() only names queues it matches. */
  pattern: string;
  query: string;
  vars(): Promise<Record<string, unknown>>;
  /** For reads that hide rather than refuse: what an under-scoped token sees. */
  hidden?: (data: Record<string, unknown>) => void;
}

async function queue(name: string): Promise<string> {
  await svc.api.engine.createQueue(name);
  return name;
}

/** A receipt of a fresh delivery from a fresh queue under `prefix`. */
async function receipt(prefix: string): Promise<string> {
  const name = await queue(unique(prefix));
  await svc.api.engine.send(name, { payload: { n: 1 } });
  const [delivery] = await svc.api.engine.receive({ queue: name, max: 1 });
  return delivery!.receipt;
}

const MESSAGE = { payload: { secret: 'payload' } };

const CASES: Case[] = [
  {
    name: 'Query.queues',
    action: 'read',
    pattern: 'op.queues.*',
    query: `{ queues { name stats { ready } } }`,
    vars: async () => {
      await queue(unique('op.queues'));
      return {};
    },
    hidden: (data) => {
      const names = (data.queues as { name: string }[]).map((q) => q.name);
      expect(names.filter((n) => n.startsWith('op.queues.'))).toEqual([]);
    },
  },
  {
    name: 'Query.queue',
    action: 'read',
    pattern: 'op.queue.*',
    query: `query ($name: String!) { queue(name: $name) { name bindings } }`,
    vars: async () => ({ name: await queue(unique('op.queue')) }),
  },
  {
    name: 'Query.message',
    action: 'read',
    pattern: 'op.message.*',
    query: `query ($id: ID!) { message(id: $id) { id payload } }`,
    vars: async () => {
      const name = await queue(unique('op.message'));
      return { id: (await svc.api.engine.send(name, MESSAGE)).id };
    },
    hidden: (data) => expect(data.message).toBeNull(),
  },
  {
    name: 'Query.messages',
    action: 'read',
    pattern: 'op.messages.*',
    query: `query ($queue: String!) { messages(queue: $queue) { id payload } }`,
    vars: async () => {
      const name = await queue(unique('op.messages'));
      await svc.api.engine.send(name, MESSAGE);
      return { queue: name };
    },
  },
  {
    name: 'Mutation.createQueue',
    action: 'admin',
    pattern: 'op.create.*',
    query: `mutation ($name: String!) { createQueue(name: $name) { name } }`,
    vars: () => Promise.resolve({ name: unique('op.create') }),
  },
  {
    name: 'Mutation.configureQueue',
    action: 'admin',
    pattern: 'op.configure.*',
    query: `mutation ($name: String!) { configureQueue(name: $name, config: { maxAttempts: 9 }) { name } }`,
    vars: async () => ({ name: await queue(unique('op.configure')) }),
  },
  {
    name: 'Mutation.deleteQueue',
    action: 'admin',
    pattern: 'op.delete.*',
    query: `mutation ($name: String!) { deleteQueue(name: $name) }`,
    vars: async () => ({ name: await queue(unique('op.delete')) }),
  },
  {
    name: 'Mutation.pauseQueue',
    action: 'admin',
    pattern: 'op.pause.*',
    query: `mutation ($name: String!) { pauseQueue(name: $name) { paused } }`,
    vars: async () => ({ name: await queue(unique('op.pause')) }),
  },
  {
    name: 'Mutation.resumeQueue',
    action: 'admin',
    pattern: 'op.resume.*',
    query: `mutation ($name: String!) { resumeQueue(name: $name) { paused } }`,
    vars: async () => {
      const name = await queue(unique('op.resume'));
      await svc.api.engine.pauseQueue(name);
      return { name };
    },
  },
  {
    name: 'Mutation.purge',
    action: 'admin',
    pattern: 'op.purge.*',
    query: `mutation ($queue: String!) { purge(queue: $queue) }`,
    vars: async () => {
      const name = await queue(unique('op.purge'));
      await svc.api.engine.send(name, MESSAGE);
      return { queue: name };
    },
  },
  {
    name: 'Mutation.redrive',
    action: 'admin',
    pattern: 'op.redrive.*',
    query: `mutation ($queue: String!) { redrive(queue: $queue) }`,
    vars: async () => ({ queue: await queue(unique('op.redrive')) }),
  },
  {
    name: 'Mutation.bindQueue',
    action: 'admin',
    pattern: 'op.bind.*',
    query: `mutation ($queue: String!) { bindQueue(queue: $queue, pattern: "op.bind.#") }`,
    vars: async () => ({ queue: await queue(unique('op.bind')) }),
  },
  {
    name: 'Mutation.unbindQueue',
    action: 'admin',
    pattern: 'op.unbind.*',
    query: `mutation ($queue: String!) { unbindQueue(queue: $queue, pattern: "op.unbind.#") }`,
    vars: async () => {
      const name = await queue(unique('op.unbind'));
      await svc.api.engine.bindQueue(name, 'op.unbind.#');
      return { queue: name };
    },
  },
  {
    name: 'Mutation.send',
    action: 'send',
    pattern: 'op.send.*',
    query: `mutation ($queue: String!, $m: SendInput!) { send(queue: $queue, message: $m) { id } }`,
    vars: async () => ({ queue: await queue(unique('op.send')), m: MESSAGE }),
  },
  {
    name: 'Mutation.sendBatch',
    action: 'send',
    pattern: 'op.batch.*',
    query: `mutation ($queue: String!, $m: [SendInput!]!) { sendBatch(queue: $queue, messages: $m) { id } }`,
    vars: async () => ({ queue: await queue(unique('op.batch')), m: [MESSAGE, MESSAGE] }),
  },
  {
    name: 'Mutation.publish',
    action: 'send',
    pattern: 'op.publish.*',
    query: `mutation ($topic: String!, $m: SendInput!) { publish(topic: $topic, message: $m) { id queue } }`,
    vars: async () => {
      const name = await queue(unique('op.publish'));
      const topic = `publish.t${seq}`;
      await svc.api.engine.bindQueue(name, topic);
      return { topic, m: MESSAGE };
    },
  },
  {
    name: 'Mutation.receive',
    action: 'receive',
    pattern: 'op.receive.*',
    query: `mutation ($queue: String!) { receive(queue: $queue) { receipt message { payload } } }`,
    vars: async () => {
      const name = await queue(unique('op.receive'));
      await svc.api.engine.send(name, MESSAGE);
      return { queue: name };
    },
  },
  {
    name: 'Mutation.ack',
    action: 'receive',
    pattern: 'op.ack.*',
    query: `mutation ($r: String!) { ack(receipt: $r) }`,
    vars: async () => ({ r: await receipt('op.ack') }),
  },
  {
    name: 'Mutation.ackBatch',
    action: 'receive',
    pattern: 'op.ackbatch.*',
    query: `mutation ($r: [String!]!) { ackBatch(receipts: $r) }`,
    vars: async () => ({ r: [await receipt('op.ackbatch'), await receipt('op.ackbatch')] }),
  },
  {
    name: 'Mutation.nack',
    action: 'receive',
    pattern: 'op.nack.*',
    query: `mutation ($r: String!) { nack(receipt: $r, delaySeconds: 0) }`,
    vars: async () => ({ r: await receipt('op.nack') }),
  },
  {
    name: 'Mutation.extendLease',
    action: 'receive',
    pattern: 'op.extend.*',
    query: `mutation ($r: String!) { extendLease(receipt: $r, seconds: 60) { receipt } }`,
    vars: async () => ({ r: await receipt('op.extend') }),
  },
  {
    name: 'Query.archivedMessages',
    action: 'receive',
    pattern: 'op.archive.*',
    query: `query ($queue: String!) { archivedMessages(queue: $queue) { messages { id payload } } }`,
    vars: async () => ({ queue: await queue(unique('op.archive')) }),
  },
  {
    name: 'Query.replayJobs',
    action: 'read',
    pattern: 'op.jobs.*',
    query: `query ($queue: String!) { replayJobs(queue: $queue) { id } }`,
    vars: async () => ({ queue: await queue(unique('op.jobs')) }),
  },
  {
    name: 'Mutation.startRedrive',
    action: 'admin',
    pattern: 'op.redrivejob.*',
    query: `mutation ($queue: String!) { startRedrive(queue: $queue, dryRun: true) { id } }`,
    vars: async () => ({ queue: await queue(unique('op.redrivejob')) }),
  },
];

/**
 * Scopes that grant everything on the case's queues except the action it needs (and that
 * action only on other queues): the check must be exactly per action and per queue.
 */
function underScopes(action: ScopeAction, pattern: string): string {
  const others: Record<ScopeAction, string[]> = {
    read: ['send'],
    send: ['receive'],
    receive: ['read', 'send'],
    admin: ['receive', 'send'],
  };
  return [...others[action].map((a) => `${a}:${pattern}`), `${action}:elsewhere.*`].join(',');
}

describe.each(CASES)('$name', (c) => {
  let right: string;
  let under: string;
  beforeAll(async () => {
    right = await svc.token(`right-${c.name}`, `${c.action}:${c.pattern}`);
    under = await svc.token(`under-${c.name}`, underScopes(c.action, c.pattern));
  });

  it.each([
    ['no token', undefined],
    ['a wrong token', WRONG],
    ['a malformed token', 'not-a-token'],
    ['a revoked token', () => revoked],
  ] as const)('is refused with %s: UNAUTHENTICATED, 401, nothing changed', async (_what, token) => {
    const vars = await c.vars();
    const before = await databaseSnapshot(t);
    const secret = typeof token === 'function' ? token() : token;
    const result = await svc.request(secret, c.query, vars);
    expect(result.status).toBe(401);
    expect(result.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(onlyErrorCode(result)).toBe('UNAUTHENTICATED');
    expect(result.data).toBeUndefined();
    expect(await databaseSnapshot(t)).toBe(before);
  });

  it(`is ${c.hidden === undefined ? 'FORBIDDEN' : 'hidden'} to a token without ${c.action} on its queue, and changes nothing`, async () => {
    const vars = await c.vars();
    const before = await databaseSnapshot(t);
    const result = await svc.request(under, c.query, vars);
    if (c.hidden === undefined) {
      expect(onlyErrorCode(result)).toBe('FORBIDDEN');
      expect(result.errors?.[0]?.message).toContain(c.action);
      // No payload leaks through a refused operation.
      expect(JSON.stringify(result)).not.toContain('payload"');
    } else {
      expect(result.errors).toBeUndefined();
      c.hidden(result.data!);
    }
    expect(await databaseSnapshot(t)).toBe(before);
  });

  it(`is allowed with only ${c.action}:${c.pattern}`, async () => {
    const result = await svc.request(right, c.query, await c.vars());
    expect(result.errors).toBeUndefined();
    expect(result.status).toBe(200);
    if (c.name === 'Query.message') expect(result.data?.message).not.toBeNull();
    if (c.name === 'Query.queues') {
      const names = (result.data!.queues as { name: string }[]).map((q) => q.name);
      expect(names.length).toBeGreaterThan(0);
      expect(names.every((n) => n.startsWith('op.queues.'))).toBe(true);
    }
  });
});

const SUBSCRIPTIONS = [
  {
    name: 'deliveries',
    action: 'receive' as const,
    query: `subscription ($queue: String!) { deliveries(queue: $queue) { receipt message { payload } } }`,
  },
  {
    name: 'queueStats',
    action: 'read' as const,
    query: `subscription ($queue: String!) { queueStats(queue: $queue) { queue ready } }`,
  },
];

describe.each(SUBSCRIPTIONS)('Subscription.$name', (s) => {
  let right: string;
  let under: string;
  const pattern = `sub.${s.name}.*`;
  beforeAll(async () => {
    right = await svc.token(`right-sub-${s.name}`, `${s.action}:${pattern}`);
    under = await svc.token(`under-sub-${s.name}`, underScopes(s.action, pattern));
  });

  const open = async (
    transport: 'sse' | 'ws',
    secret: string | undefined,
    queueName: string,
  ): Promise<TokenSubscription> =>
    transport === 'sse'
      ? subscribeSse(svc.baseUrl, secret, s.query, { queue: queueName })
      : subscribeWs(svc.baseUrl, secret, s.query, { queue: queueName });

  it.each([
    ['sse', 'no token', undefined],
    ['sse', 'a wrong token', WRONG],
    ['sse', 'a revoked token', () => revoked],
    ['ws', 'no token', undefined],
    ['ws', 'a wrong token', WRONG],
    ['ws', 'a revoked token', () => revoked],
  ] as const)('over %s is refused with %s, and leases nothing', async (transport, _what, token) => {
    const name = await queue(unique(`sub.${s.name}`));
    await svc.api.engine.send(name, MESSAGE);
    const secret = typeof token === 'function' ? token() : token;
    const sub = await open(transport, secret, name);
    try {
      if (transport === 'sse') {
        expect(sub.status).toBe(401);
        expect(onlyErrorCode(await sub.next())).toBe('UNAUTHENTICATED');
      } else {
        // The connection itself is refused at connection_init, with the reason.
        await sub.ended();
        expect(sub.closed?.code).toBe(4401);
        expect(sub.closed?.reason).toContain('UNAUTHENTICATED');
        await expect(sub.next(100)).rejects.toThrow('ended');
      }
    } finally {
      await sub.close();
    }
    expect((await svc.api.engine.queueStats(name))?.leased).toBe(0);
  });

  it.each(['sse', 'ws'] as const)(
    `over %s is FORBIDDEN without ${s.action} on the queue, and leases nothing`,
    async (transport) => {
      const name = await queue(unique(`sub.${s.name}`));
      await svc.api.engine.send(name, MESSAGE);
      const sub = await open(transport, under, name);
      try {
        const result = await sub.next();
        expect(onlyErrorCode(result)).toBe('FORBIDDEN');
        expect(JSON.stringify(result)).not.toContain('secret');
      } finally {
        await sub.close();
      }
      expect((await svc.api.engine.queueStats(name))?.leased).toBe(0);
    },
  );

  it.each(['sse', 'ws'] as const)(
    'over %s streams with only the right scope',
    async (transport) => {
      const name = await queue(unique(`sub.${s.name}`));
      await svc.api.engine.send(name, MESSAGE);
      const sub = await open(transport, right, name);
      try {
        const result = await sub.next();
        expect(result.errors).toBeUndefined();
        if (s.name === 'deliveries') {
          expect(result.data?.deliveries).toMatchObject({ message: { payload: MESSAGE.payload } });
        } else {
          expect(result.data?.queueStats).toEqual({ queue: name, ready: 1 });
        }
      } finally {
        await sub.close();
      }
    },
  );
});

describe('WebSocket credentials', () => {
  it('are taken from the upgrade request Authorization header too', async () => {
    const secret = await svc.token('ws-header', 'read:ws.header');
    const name = await queue('ws.header');
    const sub = subscribeWs(
      svc.baseUrl,
      secret,
      `subscription ($q: String!) { queueStats(queue: $q) { ready } }`,
      { q: name },
      'header',
    );
    try {
      expect((await sub.next()).data?.queueStats).toEqual({ ready: 0 });
    } finally {
      await sub.close();
    }
  });
});
