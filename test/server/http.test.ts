import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/server/app.ts';
import { startTestApp } from '../helpers/app.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';

let t: TestDatabase;
let app: App;
let url: string;

beforeAll(async () => {
  t = await createTestDatabase();
  app = await startTestApp(t, { MAX_BODY_BYTES: '4096' });
  url = app.url();
});
afterAll(async () => {
  await app.stop();
  await t.drop();
});

function post(body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body,
  });
}

describe('the HTTP server', () => {
  it('answers /healthz while the process is up', async () => {
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('answers /readyz 200 with a current schema and 503 while a migration is pending', async () => {
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const { rows } = await sql<{ name: string }>`
      DELETE FROM holdline.migrations WHERE name = '0002_create_sql_api' RETURNING name`.execute(
      t.db,
    );
    try {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: 'unavailable' });
    } finally {
      await sql`INSERT INTO holdline.migrations (name, timestamp) VALUES (${rows[0]!.name}, now()::text)`.execute(
        t.db,
      );
    }
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('exports queue depth, counters and latency histograms on /metrics', async () => {
    await graphqlRequest(url, `mutation { createQueue(name: "metered") { name } }`);
    await graphqlRequest(
      url,
      `mutation { send(queue: "metered", message: { payload: 1 }) { id } }`,
    );
    await graphqlRequest(
      url,
      `mutation { send(queue: "metered", message: { payload: 2 }) { id } }`,
    );
    const received = await graphqlRequest<{ receive: { receipt: string }[] }>(
      url,
      `mutation { receive(queue: "metered") { receipt } }`,
    );
    await graphqlRequest(url, `mutation($r: String!) { ack(receipt: $r) }`, {
      r: received.data!.receive[0]!.receipt,
    });

    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('holdline_queue_messages{queue="metered",state="ready"} 1');
    expect(text).toContain('holdline_queue_messages{queue="metered",state="leased"} 0');
    // Filled from the same read as the depths, on this (the first) scrape, not the next.
    expect(text).toMatch(/^holdline_queue_oldest_ready_age_seconds\{queue="metered"\} \d/m);
    expect(text).toContain('holdline_messages_sent_total{queue="metered"} 2');
    expect(text).toContain('holdline_messages_delivered_total{queue="metered"} 1');
    expect(text).toContain('holdline_messages_acked_total{queue="metered"} 1');
    expect(text).toMatch(/holdline_end_to_end_latency_seconds_count 1\b/);
    expect(text).toMatch(/holdline_graphql_operations_total\{type="mutation",result="ok"\} \d+/);
    // Node's default metrics keep their standard names, which Node dashboards look for.
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).not.toMatch(/^holdline_(process|nodejs)_/m);
  });

  it('exports the flow limits of the queues that have them on /metrics', async () => {
    await graphqlRequest(
      url,
      `mutation { createQueue(name: "limited", config: {
         maxInFlight: 8, rateLimit: { count: 10, perSeconds: 2 },
         groupRateLimit: { count: 3, perSeconds: 0.5 } }) { name } }`,
    );
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toContain('holdline_queue_max_in_flight{queue="limited"} 8');
    expect(text).toContain('holdline_queue_rate_limit_per_second{queue="limited"} 5');
    expect(text).toContain('holdline_queue_group_rate_limit_per_second{queue="limited"} 6');
    expect(text).not.toContain('holdline_queue_max_in_flight{queue="metered"}');
  });

  it('answers / with the dashboard, whose header links GraphiQL, health, readiness and metrics', async () => {
    const res = await fetch(`${url}/`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    expect(html).toContain('<title>Holdline</title>');
    for (const path of ['/graphql', '/healthz', '/readyz', '/metrics']) {
      expect(html).toContain(`href="${path}"`);
    }
    expect(html).toContain('docs/operations.md');
    expect(html).not.toMatch(/https?:\/\//);
    // Its script and styles come from this service, and nothing is inline.
    expect([...html.matchAll(/<script[^>]*>/gi)].map((m) => m[0])).toEqual([
      '<script type="module" src="/dashboard/dashboard.js">',
    ]);
    expect(html).not.toMatch(/<style/i);
  });

  it('answers / with the links as JSON to a client that asks for JSON', async () => {
    const res = await fetch(`${url}/`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      service: 'holdline',
      links: { graphql: '/graphql', health: '/healthz', ready: '/readyz', metrics: '/metrics' },
    });
  });

  it('refuses a body over MAX_BODY_BYTES with 413 PAYLOAD_TOO_LARGE, writing nothing', async () => {
    await graphqlRequest(url, `mutation { createQueue(name: "big") { name } }`);
    const query = `mutation($p: JSON!) { send(queue: "big", message: { payload: $p }) { id } }`;
    const res = await post(JSON.stringify({ query, variables: { p: 'x'.repeat(5000) } }));
    expect(res.status).toBe(413);
    const body = (await res.json()) as { errors: { extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe('PAYLOAD_TOO_LARGE');
    const { rows } = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM holdline.messages WHERE queue = 'big'`.execute(t.db);
    expect(rows[0]?.n).toBe(0);
  });

  it('refuses a chunked body, whose size cannot be bounded up front, with 411', async () => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(
          new TextEncoder().encode(JSON.stringify({ query: '{ queues { name } }' })),
        );
        controller.close();
      },
    });
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(411);
  });

  it('bounds bodies of other methods too: chunked gets 411, over the limit 413', async () => {
    const chunked = await fetch(`${url}/graphql`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('x'.repeat(100)));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(411);
    const large = await fetch(`${url}/graphql`, { method: 'PATCH', body: 'x'.repeat(5000) });
    expect(large.status).toBe(413);
    const body = (await large.json()) as { errors: { extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe('PAYLOAD_TOO_LARGE');
    // A request without a body is not the body check's business: it reaches yoga (whose CSRF
    // guard refuses a DELETE with 403).
    const bare = await fetch(`${url}/graphql`, { method: 'DELETE' });
    expect(bare.status).toBe(403);
  });

  it('answers malformed JSON with 400 and a coded error', async () => {
    const res = await post('{"query": "{ queues { name } }"');
    expect(res.status).toBe(400);
    const body = (await res.json()) as {
      errors: { message: string; extensions?: { code?: string } }[];
    };
    expect(body.errors[0]?.message).toBe('POST body sent invalid JSON.');
    expect(body.errors[0]?.extensions?.code).toBe('BAD_REQUEST');
  });

  it('echoes a sane x-request-id and makes one up otherwise', async () => {
    const given = await fetch(`${url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
    expect(given.headers.get('x-request-id')).toBe('abc-123');
    const hostile = await fetch(`${url}/healthz`, { headers: { 'x-request-id': 'a b<script>' } });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers unknown paths with 404', async () => {
    expect((await fetch(`${url}/nope`)).status).toBe(404);
  });
});
