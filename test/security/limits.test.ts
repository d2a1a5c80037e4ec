import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationCost } from '../../src/graphql/cost-limit.ts';
import { attachWebSocketServer, createExecutableSchema } from '../../src/graphql/schema.ts';
import { parse } from 'graphql';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startService } from '../graphql/harness.ts';
import type { GraphQLService } from '../graphql/harness.ts';
import { onlyErrorCode, startSecureService, subscribeWs } from './harness.ts';
import type { SecureService } from './harness.ts';

let t: TestDatabase;
let open: GraphQLService;
let svc: SecureService;
beforeAll(async () => {
  t = await createTestDatabase();
  open = await startService(t, { maxCost: 1_000, introspection: false });
  svc = await startSecureService(t, { rateLimit: { perSecond: 1, burst: 3 } });
  await open.engine.createQueue('lim');
});
afterAll(async () => {
  await svc.stop();
  await open.stop();
  await t.drop();
});

const URL_BASE = 'http://holdline.test/graphql';

async function queueCount(prefix: string): Promise<number> {
  return (await open.engine.listQueues()).filter((q) => q.name.startsWith(prefix)).length;
}

describe('the per-token rate limit', () => {
  it('answers RATE_LIMITED with 429 and Retry-After past the burst, for that token only', async () => {
    const busy = await svc.token('busy', 'read:*');
    const calm = await svc.token('calm', 'read:*');
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<SecureService['request']>> | undefined;
    for (let i = 0; i < 5; i++) {
      const result = await svc.request(busy, `{ queues { name } }`);
      statuses.push(result.status);
      if (result.status === 429) limited ??= result;
    }
    // Burst 3 at 1/s: the fourth and fifth requests within a second are refused.
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    expect(onlyErrorCode(limited!)).toBe('RATE_LIMITED');
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await svc.request(calm, `{ queues { name } }`)).status).toBe(200);
  });

  it('counts WebSocket operations, not the events they push', async () => {
    const secret = await svc.token('ws-busy', 'read:*');
    const subscribe = () =>
      subscribeWs(svc.baseUrl, secret, `subscription { queueStats(queue: "lim") { ready } }`);
    const subs = [subscribe(), subscribe(), subscribe(), subscribe()];
    try {
      const results = await Promise.all(subs.map((s) => s.next()));
      const codes = results.map((r) => r.errors?.[0]?.extensions?.code ?? 'ok');
      expect(codes.filter((c) => c === 'ok')).toHaveLength(3);
      expect(codes.filter((c) => c === 'RATE_LIMITED')).toHaveLength(1);
    } finally {
      await Promise.all(subs.map((s) => s.close()));
    }
  });
});

describe('the cost limit', () => {
  it('computes costs from list bounds, variables and the costly fields', () => {
    const schema = createExecutableSchema();
    const cost = (query: string, variables?: Record<string, unknown>): number =>
      operationCost(schema, parse(query), undefined, variables);
    expect(
      cost(`mutation { receive(queue: "q", max: 100) { receipt message { id payload } } }`),
    ).toBe(401);
    expect(
      cost(`mutation ($m: Int) { receive(queue: "q", max: $m) { receipt } }`, { m: 1000 }),
    ).toBe(1001);
    expect(cost(`{ messages(queue: "q") { id position } }`)).toBe(1 + 50 * 101);
    expect(cost(`{ __schema { types { name } } queues { name } }`)).toBe(1 + 100);
    // Out of the engine's range: costed as one item, for the resolver to refuse.
    expect(cost(`mutation { receive(queue: "q", max: 100000) { receipt } }`)).toBe(2);
  });

  it('refuses an operation over MAX_QUERY_COST before anything runs', async () => {
    const result = await open.request(
      `mutation ($max: Int) { receive(queue: "lim", max: $max) { message { id position } } }`,
      { max: 500 },
    );
    expect(onlyErrorCode(result)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(result.errors?.[0]?.message).toContain('over the limit of 1000');
    expect(await open.engine.queueStats('lim')).toMatchObject({ leased: 0 });
    const small = await open.request(`mutation { receive(queue: "lim", max: 5) { receipt } }`);
    expect(small.errors).toBeUndefined();
  });

  it('answers a count argument out of its range with the range rule, not the cost limit', async () => {
    const receive = await open.request(
      `mutation { receive(queue: "lim", max: 100000) { message { id position } } }`,
    );
    expect(onlyErrorCode(receive)).toBe('BAD_USER_INPUT');
    expect(receive.errors?.[0]?.message).toBe('max must be an integer from 1 to 1000; got 100000');
    const byVariable = await open.request(
      `mutation ($max: Int) { receive(queue: "lim", max: $max) { message { id position } } }`,
      { max: 2000 },
    );
    expect(byVariable.errors?.[0]?.message).toBe('max must be an integer from 1 to 1000; got 2000');
    const page = await open.request(`{ messages(queue: "lim", first: 100000) { id position } }`);
    expect(onlyErrorCode(page)).toBe('BAD_USER_INPUT');
    expect(page.errors?.[0]?.message).toBe('first must be an integer from 1 to 1000; got 100000');
    const batch = await open.request(
      `mutation ($m: [SendInput!]!) { sendBatch(queue: "lim", messages: $m) { id } }`,
      { m: Array.from({ length: 1001 }, (_, i) => ({ payload: i })) },
    );
    expect(onlyErrorCode(batch)).toBe('BAD_USER_INPUT');
    expect(batch.errors?.[0]?.message).toBe('messages must hold 1 to 1000 items; got 1001');
    expect(await open.engine.queueStats('lim')).toMatchObject({ total: 0 });
    // In range, the same fields are still costed by the bound: 1 + 1000 × 3 is over 1,000.
    const inRange = await open.request(
      `mutation { receive(queue: "lim", max: 1000) { message { id } } }`,
    );
    expect(onlyErrorCode(inRange)).toBe('GRAPHQL_VALIDATION_FAILED');
  });
});

describe('introspection', () => {
  it('is refused when turned off, while __typename still works', async () => {
    const result = await open.request(`{ __schema { queryType { name } } }`);
    expect(onlyErrorCode(result)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(result.errors?.[0]?.message).toContain('introspection is disabled');
    expect((await open.request(`{ __type(name: "Queue") { name } }`)).errors).toHaveLength(1);
    expect((await open.request(`{ __typename }`)).data).toEqual({ __typename: 'Query' });
  });

  it('needs a token when authentication is on', async () => {
    const result = await svc.request(undefined, `{ __schema { queryType { name } } }`);
    expect(result.status).toBe(401);
    const secret = await svc.token('introspector', 'read:nothing');
    const allowed = await svc.request(secret, `{ __schema { queryType { name } } }`);
    expect(allowed.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
  });
});

describe('cross-site request forgery', () => {
  it('refuses a GET without a custom header, and a form or text/plain POST, changing nothing', async () => {
    const get = await open.handler.yoga.fetch(
      `${URL_BASE}?query=${encodeURIComponent('{ queues { name } }')}`,
    );
    expect(get.status).toBe(403);
    expect(
      ((await get.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions
        .code,
    ).toBe('FORBIDDEN');
    for (const [type, body] of [
      [
        'application/x-www-form-urlencoded',
        `query=${encodeURIComponent('mutation { createQueue(name: "csrf.form") { name } }')}`,
      ],
      [
        'text/plain',
        JSON.stringify({ query: 'mutation { createQueue(name: "csrf.text") { name } }' }),
      ],
      ['multipart/form-data; boundary=x', '--x\r\n'],
    ]) {
      const response = await open.handler.yoga.fetch(URL_BASE, {
        method: 'POST',
        headers: { 'content-type': type! },
        body,
      });
      expect(response.status).toBe(403);
    }
    expect(await queueCount('csrf.')).toBe(0);
  });

  it('serves a GET query that carries the CSRF header or a bearer token', async () => {
    const query = encodeURIComponent('{ queue(name: "lim") { name } }');
    const withHeader = await open.handler.yoga.fetch(`${URL_BASE}?query=${query}`, {
      headers: { 'x-graphql-yoga-csrf': '1' },
    });
    expect(await withHeader.json()).toEqual({ data: { queue: { name: 'lim' } } });
    const secret = await svc.token('getter', 'read:lim');
    const withToken = await svc.api.handler.yoga.fetch(`${URL_BASE}?query=${query}`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(await withToken.json()).toEqual({ data: { queue: { name: 'lim' } } });
  });

  it('never runs a mutation sent with GET', async () => {
    const mutation = encodeURIComponent('mutation { createQueue(name: "csrf.get") { name } }');
    const response = await open.handler.yoga.fetch(`${URL_BASE}?query=${mutation}`, {
      headers: { 'x-graphql-yoga-csrf': '1' },
    });
    expect(response.status).toBe(405);
    expect(await queueCount('csrf.')).toBe(0);
  });
});

describe('browser origins', () => {
  it('get no CORS headers by default, so other sites cannot read or preflight', async () => {
    const preflight = await open.handler.yoga.fetch(URL_BASE, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const post = await open.handler.yoga.fetch(URL_BASE, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: JSON.stringify({ query: '{ queues { name } }' }),
    });
    expect(post.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('are allowed when listed, without credentials', async () => {
    const listed = await startService(t, { allowedOrigins: ['https://ops.example'] });
    try {
      const preflight = await listed.handler.yoga.fetch(URL_BASE, {
        method: 'OPTIONS',
        headers: { origin: 'https://ops.example', 'access-control-request-method': 'POST' },
      });
      expect(preflight.headers.get('access-control-allow-origin')).toBe('https://ops.example');
      expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    } finally {
      await listed.stop();
    }
  });

  it('may not open a WebSocket from another site; same-origin pages and non-browsers may', async () => {
    const server = http.createServer((req, res) => void open.handler.yoga(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const dispose = attachWebSocketServer(open.handler.yoga, server);
    const port = (server.address() as AddressInfo).port;
    const upgrade = (origin?: string): Promise<number | 'open'> =>
      new Promise((resolve) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws', {
          ...(origin === undefined ? {} : { origin }),
        });
        socket.on('open', () => {
          socket.close();
          resolve('open');
        });
        socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.on('error', () => undefined);
      });
    try {
      expect(await upgrade('https://evil.example')).toBe(403);
      expect(await upgrade(`http://127.0.0.1:${port}`)).toBe('open');
      expect(await upgrade()).toBe('open');
    } finally {
      await dispose();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
