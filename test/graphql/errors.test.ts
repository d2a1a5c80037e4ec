import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { createGraphQLHandler } from '../../src/graphql/schema.ts';
import { QueueEngine } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { capturingLogger, startService } from './harness.ts';
import type { GraphQLResult, GraphQLService } from './harness.ts';

let t: TestDatabase;
let api: GraphQLService;
let shallow: GraphQLService;
beforeAll(async () => {
  t = await createTestDatabase();
  api = await startService(t);
  shallow = await startService(t, { maxDepth: 2 });
  await api.ok(`mutation { createQueue(name: "e-queue") { name } }`);
});
afterAll(async () => {
  await shallow.stop();
  await api.stop();
  await t.drop();
});

describe('unexpected errors', () => {
  it('are masked as "Unexpected error." and logged once with their stack', async () => {
    // A fault nobody translates: the SQL function behind redrive is gone (this test file's
    // own database copy).
    await sql`DROP FUNCTION holdline.redrive(text, integer)`.execute(t.db);
    const before = api.logs.length;
    const result = await api.request(`mutation { redrive(queue: "e-queue") }`);
    expect(result.errors).toEqual([
      {
        message: 'Unexpected error.',
        locations: [{ line: 1, column: 12 }],
        path: ['redrive'],
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      },
    ]);
    expect(JSON.stringify(result)).not.toContain('redrive(');
    // once: yoga's own report of the same error must not add a second error line
    const logged = api.logs.slice(before).filter((line) => line.level >= 50);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ msg: 'unexpected error', path: 'redrive' });
    expect(logged[0]?.err?.message).toContain('holdline.redrive');
    expect(logged[0]?.err?.stack).toContain('\n    at ');
  });

  it("are logged with the request's x-request-id", async () => {
    const before = api.logs.length;
    const response = await api.handler.yoga.fetch('http://holdline.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-42' },
      body: JSON.stringify({ query: `mutation { redrive(queue: "e-queue") }` }),
    });
    expect(((await response.json()) as GraphQLResult).errors?.[0]?.message).toBe(
      'Unexpected error.',
    );
    const logged = api.logs.slice(before).filter((line) => line.msg === 'unexpected error');
    expect(logged.map((line) => line.requestId)).toEqual(['req-42']);
  });

  it('do not log client mistakes at error level', async () => {
    const before = api.logs.length;
    expect(await api.errorCode(`mutation { purge(queue: "e-nobody") }`)).toBe('QUEUE_NOT_FOUND');
    const errors = api.logs.slice(before).filter((line) => line.level >= 50);
    expect(errors).toEqual([]);
  });
});

describe('an unreachable database', () => {
  it('is reported as UNAVAILABLE and logged as a warning, not an error', async () => {
    // Port 1 on loopback: nothing listens, every connection is refused at once.
    const db = createDatabase(createPool({ connectionString: 'postgres://127.0.0.1:1/none' }));
    const { logger, lines } = capturingLogger();
    const engine = new QueueEngine({ db, logger });
    const handler = createGraphQLHandler({ engine, logger });
    try {
      const response = await handler.yoga.fetch('http://holdline.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ queues { name } }' }),
      });
      const result = (await response.json()) as GraphQLResult;
      expect(result.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
      expect(lines.filter((line) => line.level >= 50)).toEqual([]);
      expect(lines.filter((line) => line.level === 40).map((line) => line.msg)).toEqual([
        'request failed: database unavailable',
      ]);
    } finally {
      await engine.stop();
      await db.destroy();
    }
  });
});

describe('GraphQL request errors keep their codes', () => {
  it('a syntax error is GRAPHQL_PARSE_FAILED', async () => {
    const result = await api.request(`{ queues { name `);
    expect(result.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('an unknown field is GRAPHQL_VALIDATION_FAILED', async () => {
    const result = await api.request(`{ queues { nope } }`);
    expect(result.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('a variable of the wrong type is BAD_USER_INPUT', async () => {
    const result = await api.request(
      `mutation ($max: Int) { receive(queue: "e-queue", max: $max) { receipt } }`,
      { max: 'three' },
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('a malformed DateTime literal is BAD_USER_INPUT', async () => {
    const result = await api.request(
      `mutation { send(queue: "e-queue", message: { payload: 1, runAt: "soon" }) { id } }`,
    );
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toContain('RFC 3339');
  });
});

describe('limits', () => {
  it('refuses fields nested deeper than maxDepth', async () => {
    const result = await shallow.request(`query Deep { queues { stats { ready } } }`);
    expect(result.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(result.errors?.[0]?.message).toContain('deeper than the limit of 2');
  });

  it('counts fragments where they are spread', async () => {
    const result = await shallow.request(`
      query { ...Q }
      fragment Q on Query { queues { ...S } }
      fragment S on Queue { stats { ready } }
    `);
    expect(result.errors?.[0]?.message).toContain('deeper than the limit of 2');
  });

  it('accepts queries within maxDepth, and introspection at any depth', async () => {
    const ok = await shallow.request(`{ queues { name } }`);
    expect(ok.errors).toBeUndefined();
    const introspection = await shallow.request(
      `{ __schema { types { name fields { name type { name ofType { name } } } } } }`,
    );
    expect(introspection.errors).toBeUndefined();
  });

  it('refuses batched requests without running any of them', async () => {
    const response = await api.handler.yoga.fetch('http://holdline.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { query: `mutation { createQueue(name: "e-batched-1") { name } }` },
        { query: `mutation { createQueue(name: "e-batched-2") { name } }` },
      ]),
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    const { rows } = await sql<{ n: string }>`
      SELECT count(*) AS n FROM holdline.queues WHERE name LIKE 'e-batched-%'`.execute(t.db);
    expect(rows[0]?.n).toBe('0');
  });
});

describe('GraphiQL', () => {
  it('is served to browsers with the example operations preloaded', async () => {
    const response = await api.handler.yoga.fetch('http://holdline.test/graphql', {
      headers: { accept: 'text/html' },
    });
    expect(response.status).toBe(200);
    const page = await response.text();
    expect(page).toContain('Holdline GraphiQL');
    expect(page).toContain('mutation CreateQueue');
  });
});
