import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthGate } from '../../src/graphql/authentication.ts';
import { requestIdOf } from '../../src/graphql/context.ts';
import { acceptedJsonMediaType, createJsonPostHandler } from '../../src/graphql/json-post.ts';
import type { GraphQLYoga } from '../../src/graphql/schema.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startSecureService } from '../security/harness.ts';
import type { SecureService } from '../security/harness.ts';

/**
 * The lean path for programs' JSON POSTs (src/graphql/json-post.ts) must answer exactly as
 * yoga does. Each request is sent twice over real HTTP: as is, and with an `extensions`
 * member, a shape the lean path leaves to yoga (which ignores the member). Status,
 * content type and body must be the same, and a spy on yoga shows which path served each.
 */

let t: TestDatabase;
let secure: SecureService;
let server: http.Server;
let url: string;
let admin: string;
let scoped: string;
/** Requests yoga served (its node handler or its fetch), and all requests. */
const served = { yoga: 0 };

/** The service's yoga with a count of the requests it serves; everything else passes through. */
function countingYoga(yoga: GraphQLYoga): GraphQLYoga {
  return new Proxy(yoga, {
    apply(target, thisArg, args) {
      served.yoga++;
      return Reflect.apply(target, thisArg, args) as unknown;
    },
    get(target, property, receiver) {
      if (property === 'fetch') {
        return (...args: Parameters<GraphQLYoga['fetch']>) => {
          served.yoga++;
          return target.fetch(...args);
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

beforeAll(async () => {
  t = await createTestDatabase();
  secure = await startSecureService(t);
  admin = await secure.token('admin', 'admin');
  scoped = await secure.token('orders-only', 'send:orders*,receive:orders*');
  await secure.ok(admin, 'mutation { createQueue(name: "orders") { name } }');
  const handler = createJsonPostHandler({
    yoga: countingYoga(secure.api.handler.yoga),
    gate: new AuthGate({ control: secure.control }),
  });
  server = http.createServer((req, res) => void handler(req, res, { requestId: requestIdOf(req) }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await secure.stop();
  await t.drop();
});

interface Answer {
  status: number;
  contentType: string | null;
  body: unknown;
  servedByYoga: boolean;
}

async function post(body: unknown, headers: Record<string, string>): Promise<Answer> {
  const before = served.yoga;
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    body: response.headers.get('content-type')?.includes('json')
      ? (JSON.parse(text) as unknown)
      : text,
    servedByYoga: served.yoga > before,
  };
}

/** Sends a request on the lean path and through yoga; returns both answers. */
async function both(
  request: { query: string; variables?: Record<string, unknown> },
  headers: Record<string, string>,
): Promise<{ lean: Answer; yoga: Answer }> {
  const lean = await post(request, headers);
  const yoga = await post({ ...request, extensions: {} }, headers);
  expect(yoga.servedByYoga).toBe(true);
  return { lean, yoga };
}

const bearer = (secret: string): Record<string, string> => ({ authorization: `Bearer ${secret}` });
/** The Authorization header of a token made in beforeAll. */
const as = (who: 'admin' | 'scoped'): Record<string, string> =>
  bearer(who === 'admin' ? admin : scoped);
const SEND = `mutation Send($queue: String!, $payload: JSON!) {
  send(queue: $queue, message: { payload: $payload }) { queue payload state }
}`;

describe('a JSON POST from a program', () => {
  type Who = 'admin' | 'scoped';
  const cases: [string, { query: string; variables?: Record<string, unknown> }, Who][] = [
    ['a query', { query: '{ queues { name } }' }, 'admin'],
    [
      'a mutation with variables',
      { query: SEND, variables: { queue: 'orders', payload: { n: 1 } } },
      'scoped',
    ],
    ['a bad queue name', { query: SEND, variables: { queue: 'no such', payload: {} } }, 'scoped'],
    [
      'an unknown queue',
      { query: SEND, variables: { queue: 'orders-gone', payload: {} } },
      'scoped',
    ],
    [
      'a queue outside the scopes',
      { query: SEND, variables: { queue: 'billing', payload: {} } },
      'scoped',
    ],
    [
      'a variable of the wrong type',
      { query: SEND, variables: { queue: 5, payload: {} } },
      'scoped',
    ],
    ['a document that does not validate', { query: '{ nope }' }, 'admin'],
    ['a document that does not parse', { query: '{ queues { ' }, 'admin'],
    [
      'a subscription',
      { query: 'subscription { queueStats(queue: "orders") { ready } }' },
      'admin',
    ],
  ];

  for (const accept of [
    undefined,
    '*/*',
    'application/json',
    'application/graphql-response+json',
    'application/graphql-response+json, application/json',
    'application/json, application/graphql-response+json',
  ]) {
    it(`gets yoga's answer with Accept ${accept ?? '(none)'}`, async () => {
      for (const [, request, token] of cases.slice(0, 6)) {
        const headers = { ...as(token), ...(accept ? { accept } : {}) };
        const { lean, yoga } = await both(request, headers);
        expect(lean.servedByYoga).toBe(false);
        expect({ ...lean, servedByYoga: false }).toEqual({ ...yoga, servedByYoga: false });
      }
    });
  }

  it.each(cases)("gets yoga's answer for %s", async (_name, request, token) => {
    const { lean, yoga } = await both(request, {
      ...as(token),
      accept: 'application/graphql-response+json, application/json',
    });
    expect({ ...lean, servedByYoga: false }).toEqual({ ...yoga, servedByYoga: false });
  });

  it('leaves documents that fail to parse or validate, and subscriptions, to yoga', async () => {
    for (const [, request, token] of cases.slice(6)) {
      const answer = await post(request, { ...as(token), accept: 'application/json' });
      expect(answer.servedByYoga).toBe(true);
    }
  });

  it('counts a token once against its rate limit when yoga answers after admission', async () => {
    // A parse error is found after the lean path admitted the request; yoga must reuse that
    // admission, or the one request would count twice.
    const limited = await startSecureService(t, { rateLimit: { perSecond: 0.001, burst: 2 } });
    try {
      const secret = await limited.token('two-requests', 'admin');
      const handler = limited.api.handler.serve;
      const limitedServer = http.createServer(
        (req, res) => void handler(req, res, { requestId: requestIdOf(req) }),
      );
      await new Promise<void>((resolve) => limitedServer.listen(0, '127.0.0.1', resolve));
      const limitedUrl = `http://127.0.0.1:${(limitedServer.address() as AddressInfo).port}/graphql`;
      const send = async (query: string): Promise<unknown> => {
        const response = await fetch(limitedUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...bearer(secret) },
          body: JSON.stringify({ query }),
        });
        return response.json();
      };
      const parseError = (await send('{ queues { ')) as { errors: { message: string }[] };
      expect(parseError.errors[0]!.message).toMatch(/Syntax Error/);
      expect(await send('{ __typename }')).toEqual({ data: { __typename: 'Query' } });
      const third = (await send('{ __typename }')) as {
        errors: { extensions: { code: string } }[];
      };
      expect(third.errors[0]!.extensions.code).toBe('RATE_LIMITED');
      limitedServer.closeAllConnections();
      await new Promise((resolve) => limitedServer.close(resolve));
    } finally {
      await limited.stop();
    }
  });
});

describe('what the lean path leaves to yoga', () => {
  it('a browser page (an Origin header), a form post, or another Accept', async () => {
    const request = { query: '{ __typename }' };
    expect(
      (await post(request, { ...bearer(admin), origin: 'http://127.0.0.1' })).servedByYoga,
    ).toBe(true);
    expect(
      (await post(request, { ...bearer(admin), accept: 'text/event-stream' })).servedByYoga,
    ).toBe(true);
    const before = served.yoga;
    await (
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'text/plain', ...bearer(admin) },
        body: JSON.stringify(request),
      })
    ).text();
    expect(served.yoga).toBe(before + 1);
  });

  it('picks the media type yoga would for the Accept headers it serves', () => {
    expect(acceptedJsonMediaType(undefined)).toBe('application/json');
    expect(acceptedJsonMediaType('*/*')).toBe('application/json');
    expect(acceptedJsonMediaType('application/graphql-response+json, application/json')).toBe(
      'application/graphql-response+json',
    );
    expect(acceptedJsonMediaType('application/json,application/graphql-response+json')).toBe(
      'application/json',
    );
    expect(acceptedJsonMediaType('text/event-stream')).toBeUndefined();
    expect(acceptedJsonMediaType('application/json, */*')).toBeUndefined();
  });
});

describe('a long poll on the lean path', () => {
  it('ends when its client goes away, so it leases nothing afterwards', async () => {
    // Drain what earlier tests sent, so that the poll waits.
    await secure.ok(admin, 'mutation { purge(queue: "orders") }');
    const controller = new AbortController();
    const poll = fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(scoped) },
      body: JSON.stringify({
        query: 'mutation { receive(queue: "orders", max: 1, waitSeconds: 20) { receipt } }',
      }),
      signal: controller.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort();
    await expect(poll).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await secure.ok(scoped, 'mutation { send(queue: "orders", message: { payload: {} }) { id } }');
    const stats = await secure.ok<{ queue: { stats: { ready: number; leased: number } } }>(
      admin,
      '{ queue(name: "orders") { stats { ready leased } } }',
    );
    expect(stats.queue.stats).toEqual({ ready: 1, leased: 0 });
  });
});
