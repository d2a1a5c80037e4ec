import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueue } from '../../src/queue/operations.ts';
import type { App } from '../../src/server/app.ts';
import { startTestApp } from '../helpers/app.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

/**
 * Property-based fuzzing of the real HTTP endpoint: random and hostile operations, variables
 * and bodies. Whatever comes in, the service answers (no hang) without a 5xx, every error
 * carries a code and no internal detail, and a rejected write changes nothing.
 */

const RUNS = 150;
const REQUEST_TIMEOUT_MS = 10_000;

let t: TestDatabase;
let app: App;
let url: string;

beforeAll(async () => {
  t = await createTestDatabase();
  app = await startTestApp(t, { MAX_BODY_BYTES: '65536' });
  url = app.url();
  await createQueue(t.db, { name: 'fuzz', config: { maxPayloadBytes: 1024 } });
});
afterAll(async () => {
  await app.stop();
  await t.drop();
});

interface Answer {
  status: number;
  body:
    { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] } | undefined;
}

async function post(body: string): Promise<Answer> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let parsed: Answer['body'];
  try {
    parsed = JSON.parse(text) as Answer['body'];
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed };
}

/** Row counts that a rejected request must leave as they were. */
async function snapshot(): Promise<string> {
  const { rows } = await sql<{ queues: number; messages: number; bindings: number }>`
    SELECT (SELECT count(*)::int FROM holdline.queues) AS queues,
           (SELECT count(*)::int FROM holdline.messages) AS messages,
           (SELECT count(*)::int FROM holdline.topic_bindings) AS bindings`.execute(t.db);
  return JSON.stringify(rows[0]);
}

/** What must hold for any answer. */
function expectWellFormed(answer: Answer): void {
  expect(answer.status).toBeLessThan(500);
  for (const error of answer.body?.errors ?? []) {
    expect(typeof error.extensions?.code).toBe('string');
    // Internals stay inside: no database error text, no PL/pgSQL context, no stack. (A
    // message may quote the caller's own value, SQL-looking or not.)
    expect(error.message).not.toMatch(
      /syntax error at or near|relation "|PL\/pgSQL|CONTEXT:|\n\s+at /,
    );
    // An unexpected exception is masked, but it is still a bug for the fuzzer to find.
    expect(error.extensions?.code).not.toBe('INTERNAL_SERVER_ERROR');
  }
}

const hostileString = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 100 }),
  fc.constantFrom(
    "x'; DROP TABLE holdline.messages; --",
    'fuzz"); DELETE FROM holdline.queues; --',
    '\u0000',
    '../../etc/passwd',
    'a'.repeat(5_000),
    '${jndi:ldap://127.0.0.1/a}',
    '🧨'.repeat(200),
    '',
    ' ',
    'fuzz',
    'fuzz.dlq',
    '#',
    '*.*',
  ),
);
const hostileNumber = fc.oneof(
  fc.integer(),
  fc.constantFrom(
    0,
    -1,
    1,
    1001,
    2 ** 31,
    -(2 ** 31) - 1,
    Number.MAX_SAFE_INTEGER,
    1e308,
    -0,
    0.5,
    3.7,
  ),
  fc.double(),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { depthSize: 'small' },
  hostileString,
  hostileNumber,
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 4 }),
  fc.array(hostileString, { maxLength: 5 }),
);

/** Operations of every kind, with every argument a variable the fuzzer fills. */
const OPERATIONS = [
  'mutation($a: String!, $b: QueueConfigInput) { createQueue(name: $a, config: $b) { name } }',
  'mutation($a: String!, $b: QueueConfigInput!) { configureQueue(name: $a, config: $b) { name } }',
  'mutation($a: String!) { deleteQueue(name: $a) }',
  'mutation($a: String!, $b: SendInput!) { send(queue: $a, message: $b) { id } }',
  'mutation($a: String!, $b: [SendInput!]!) { sendBatch(queue: $a, messages: $b) { id } }',
  'mutation($a: String!, $b: Int, $c: Int, $d: Int) { receive(queue: $a, max: $b, visibilityTimeout: $c, waitSeconds: $d) { receipt } }',
  'mutation($a: String!) { ack(receipt: $a) }',
  'mutation($a: [String!]!) { ackBatch(receipts: $a) }',
  'mutation($a: String!, $b: Int, $c: String) { nack(receipt: $a, delaySeconds: $b, error: $c) }',
  'mutation($a: String!, $b: Int!) { extendLease(receipt: $a, seconds: $b) { receipt } }',
  'mutation($a: String!, $b: Int) { redrive(queue: $a, max: $b) }',
  'mutation($a: String!) { purge(queue: $a) }',
  'mutation($a: String!) { pauseQueue(name: $a) { name } }',
  'mutation($a: String!, $b: String!) { bindQueue(queue: $a, pattern: $b) }',
  'mutation($a: String!, $b: SendInput!) { publish(topic: $a, message: $b) { id } }',
  'query($a: String!) { queue(name: $a) { name stats { ready } } }',
  'query($a: ID!) { message(id: $a) { id position estimatedWaitSeconds } }',
  'query($a: String!, $b: MessageState, $c: Int, $d: ID) { messages(queue: $a, state: $b, first: $c, after: $d) { id } }',
];

/** Values in the shape of SendInput, some valid, most hostile. */
const sendInput = fc.record(
  {
    payload: hostileValue,
    delaySeconds: hostileValue,
    runAt: hostileValue,
    priority: hostileValue,
    dedupKey: hostileValue,
    groupKey: hostileValue,
    headers: hostileValue,
    bogus: hostileValue,
  },
  { requiredKeys: [] },
);
const variables = fc.record(
  {
    a: fc.oneof(hostileValue, fc.array(hostileValue, { maxLength: 3 })),
    b: fc.oneof(hostileValue, sendInput, fc.array(sendInput, { maxLength: 3 })),
    c: hostileValue,
    d: hostileValue,
  },
  { requiredKeys: [] },
);

describe('the HTTP endpoint under hostile input', () => {
  it('answers every operation with random variables without a 5xx, uncoded error or hang', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...OPERATIONS), variables, async (query, vars) => {
        const before = await snapshot();
        const answer = await post(JSON.stringify({ query, variables: vars }));
        expectWellFormed(answer);
        const rejected = answer.body?.data == null || (answer.body.errors?.length ?? 0) > 0;
        if (rejected && query.startsWith('mutation')) expect(await snapshot()).toBe(before);
      }),
      { numRuns: RUNS },
    );
  });

  it('answers random documents and malformed bodies with a coded 4xx, changing nothing', async () => {
    const body = fc.oneof(
      fc.string({ maxLength: 500 }),
      fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 500 }).map((q) => JSON.stringify({ query: q })),
      // Deep nesting, in the selection set and in the JSON itself.
      fc
        .integer({ min: 20, max: 3_000 })
        .map((n) => JSON.stringify({ query: `{ queues ${'{ name '.repeat(n)}${'}'.repeat(n)} }` })),
      fc.integer({ min: 100, max: 5_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
      fc.constant('x'.repeat(70_000)),
    );
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const before = await snapshot();
        const answer = await post(text);
        expectWellFormed(answer);
        // A body the server could parse gets a GraphQL answer: data or errors.
        if (answer.status === 200) expect(answer.body?.data ?? answer.body?.errors).toBeDefined();
        expect(await snapshot()).toBe(before);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('documents nested past the parser', () => {
  it.each([
    ['selections', (n: number) => `{ queues ${'{ name '.repeat(n)}${'}'.repeat(n)} }`],
    ['list literals', (n: number) => `{ queues(x: ${'['.repeat(n)}${']'.repeat(n)}) { name } }`],
  ])('refuses deeply nested %s with a coded error, not a 500', async (_kind, document) => {
    for (const depth of [2_000, 5_000]) {
      const answer = await post(JSON.stringify({ query: document(depth) }));
      expect(answer.status).toBeLessThan(500);
      // Refused by the token cap or the nesting guard at parse, or by the depth limit.
      expect(answer.body?.errors?.[0]?.extensions?.code).toMatch(
        /^GRAPHQL_(PARSE|VALIDATION)_FAILED$/,
      );
    }
  });
});

describe('the SQL functions under hostile arguments', () => {
  it('raise a coded error or succeed, and write nothing when they raise', async () => {
    const call = fc.oneof(
      fc.tuple(hostileString, fc.jsonValue(), fc.integer(), fc.integer()).map(([q, p, d, pr]) => ({
        text: 'SELECT holdline.send($1, $2::jsonb, $3::int, $4::int)',
        values: [q, JSON.stringify(p), d, pr] as unknown[],
      })),
      fc.tuple(hostileString, fc.jsonValue()).map(([topic, p]) => ({
        text: 'SELECT holdline.publish($1, $2::jsonb)',
        values: [topic, JSON.stringify(p)] as unknown[],
      })),
      fc.tuple(hostileString, fc.integer(), fc.integer()).map(([q, max, vt]) => ({
        text: 'SELECT * FROM holdline.receive($1, $2::int, $3::int)',
        values: [q, max, vt] as unknown[],
      })),
      fc
        .tuple(fc.bigInt({ min: -10n, max: 2n ** 62n }), fc.uuid(), fc.double())
        .map(([id, token, delay]) => ({
          text: 'SELECT * FROM holdline.nack($1::bigint, $2::uuid, $3::float8)',
          values: [id.toString(), token, Number.isFinite(delay) ? delay : 0] as unknown[],
        })),
      fc.tuple(hostileString, fc.integer()).map(([q, max]) => ({
        text: 'SELECT holdline.redrive($1, $2::int)',
        values: [q, max] as unknown[],
      })),
    );
    await fc.assert(
      fc.asyncProperty(call, async ({ text, values }) => {
        const client = await t.pool.connect();
        try {
          await client.query('BEGIN');
          const before = await snapshot();
          try {
            await client.query(text, values);
          } catch (error) {
            const code = (error as { code?: string }).code ?? '';
            // Holdline's own class, or a type/range refusal by PostgreSQL itself.
            expect(code).toMatch(/^(HL400|HL404|HL413|22\w{3})$/);
            await client.query('ROLLBACK');
            expect(await snapshot()).toBe(before);
            return;
          }
          await client.query('ROLLBACK');
        } finally {
          client.release();
        }
      }),
      { numRuns: RUNS },
    );
  });
});
