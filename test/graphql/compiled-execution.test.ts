import { sql } from 'kysely';
import type { Plugin } from 'graphql-yoga';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { QueueEngine } from '../../src/queue/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startService } from './harness.ts';
import type { GraphQLService } from './harness.ts';

/**
 * Compiled execution (src/graphql/compiled-execution.ts) must answer exactly as yoga's
 * executor. Two handlers share one engine and one database: one compiles, the reference
 * does not. Each request goes to both, in turn, on the same kind of state; status and body
 * text (key order included) must be the same once the values that differ by nature (ids,
 * receipts, times) are blanked. A plugin records which execute function ran each time.
 */

let t: TestDatabase;
let compiled: GraphQLService;
let reference: GraphQLService;
/** The name of the execute function of each execution, in order. */
const executions: string[] = [];

const recordExecuteFn: Plugin = {
  onExecute({ executeFn }) {
    executions.push((executeFn as { name: string }).name);
  },
};

const MESSAGE_FIELDS = `id queue payload headers priority attempts state runAt createdAt lastError originQueue`;
const SEND = `mutation Send($queue: String!, $message: SendInput!) {
  send(queue: $queue, message: $message) { ${MESSAGE_FIELDS} } }`;
const RECEIVE = `mutation Receive($queue: String!, $max: Int, $visibilityTimeout: Int, $waitSeconds: Int) {
  receive(queue: $queue, max: $max, visibilityTimeout: $visibilityTimeout,
          waitSeconds: $waitSeconds) { receipt leaseExpiresAt message { ${MESSAGE_FIELDS} } } }`;
const ACK = `mutation Ack($receipt: String!) { ack(receipt: $receipt) }`;
const ACK_BATCH = `mutation AckBatch($receipts: [String!]!) { ackBatch(receipts: $receipts) }`;

beforeAll(async () => {
  t = await createTestDatabase();
  compiled = await startService(t, { plugins: [recordExecuteFn] });
  reference = await startService(t, { compiledExecution: false, plugins: [recordExecuteFn] });
  await compiled.ok(`mutation { createQueue(name: "c-queue") { name } }`);
});

afterAll(async () => {
  await reference.stop();
  await compiled.stop();
  await t.drop();
});

beforeEach(async () => {
  await sql`TRUNCATE holdline.messages`.execute(t.db);
  executions.length = 0;
});

interface Answer {
  status: number;
  /** The body as sent, with ids, receipts and times blanked. */
  text: string;
}

async function answer(
  service: GraphQLService,
  query: string,
  variables?: Record<string, unknown>,
): Promise<Answer> {
  const response = await service.handler.yoga.fetch('http://holdline.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const text = (await response.text())
    .replace(/"(id|receipt)":"[^"]*"/g, '"$1":"…"')
    .replace(/"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/g, '"<time>"');
  return { status: response.status, text };
}

/**
 * Runs `request` against the compiled handler and then the reference, each after `arrange`
 * (which gets the service, to set up state of the same kind), and returns both answers.
 */
async function both(
  request: (service: GraphQLService) => Promise<Answer>,
  arrange: (service: GraphQLService) => Promise<void> = () => Promise.resolve(),
): Promise<{ compiled: Answer; reference: Answer; ran: string[] }> {
  await arrange(compiled);
  executions.length = 0;
  const fast = await request(compiled);
  const ran = [...executions];
  await sql`TRUNCATE holdline.messages`.execute(t.db);
  await arrange(reference);
  const slow = await request(reference);
  return { compiled: fast, reference: slow, ran };
}

async function sendSome(service: GraphQLService, count: number): Promise<void> {
  await service.ok(
    `mutation($m: [SendInput!]!) { sendBatch(queue: "c-queue", messages: $m) { id } }`,
    {
      m: Array.from({ length: count }, (_, i) => ({ payload: { i }, headers: { h: i } })),
    },
  );
}

async function receipts(service: GraphQLService, max: number): Promise<string[]> {
  const data = await service.ok<{ receive: { receipt: string }[] }>(
    `mutation($max: Int) { receive(queue: "c-queue", max: $max) { receipt } }`,
    { max },
  );
  return data.receive.map((d) => d.receipt);
}

describe('compiled execution answers as the executor', () => {
  it('for a send, compiled', async () => {
    const result = await both((s) =>
      answer(s, SEND, { queue: 'c-queue', message: { payload: { n: 1 }, priority: 3 } }),
    );
    expect(result.ran).toEqual(['compiledExecute']);
    expect(result.compiled).toEqual(result.reference);
    expect(result.compiled.text).toContain('"priority":3');
  });

  it('for a receive of many deliveries, compiled', async () => {
    const result = await both(
      (s) => answer(s, RECEIVE, { queue: 'c-queue', max: 50, visibilityTimeout: null }),
      (s) => sendSome(s, 50),
    );
    expect(result.ran).toEqual(['compiledExecute']);
    expect(result.compiled).toEqual(result.reference);
    expect(result.compiled.text.match(/"receipt"/g)).toHaveLength(50);
  });

  it('for an ack and an ackBatch, compiled', async () => {
    let held: string[] = [];
    const arrange = async (s: GraphQLService): Promise<void> => {
      await sendSome(s, 3);
      held = await receipts(s, 3);
    };
    const ack = await both((s) => answer(s, ACK, { receipt: held[0] }), arrange);
    expect(ack.ran).toEqual(['compiledExecute']);
    expect(ack.compiled).toEqual(ack.reference);
    const batch = await both((s) => answer(s, ACK_BATCH, { receipts: held }), arrange);
    expect(batch.compiled).toEqual(batch.reference);
    expect(batch.compiled.text).toBe('{"data":{"ackBatch":3}}');
  });

  it('for a single value where a list is declared, and variables not sent', async () => {
    let held: string[] = [];
    const arrange = async (s: GraphQLService): Promise<void> => {
      await sendSome(s, 1);
      held = await receipts(s, 1);
    };
    // graphql-js takes a single value for a list variable as a list of one.
    const single = await both((s) => answer(s, ACK_BATCH, { receipts: held[0] }), arrange);
    expect(single.ran).toEqual(['compiledExecute']);
    expect(single.compiled).toEqual(single.reference);
    expect(single.compiled.text).toBe('{"data":{"ackBatch":1}}');
    const defaults = await both(
      (s) => answer(s, RECEIVE, { queue: 'c-queue' }),
      (s) => sendSome(s, 2),
    );
    expect(defaults.compiled).toEqual(defaults.reference);
    expect(defaults.compiled.text.match(/"receipt"/g)).toHaveLength(1);
  });

  it('for aliases, __typename and a nullable root field, compiled', async () => {
    const query = `mutation($q: String!) { sent: send(queue: $q, message: { payload: 1 }) {
      __typename kind: state id } }`;
    const send = await both((s) => answer(s, query, { q: 'c-queue' }));
    expect(send.ran).toEqual(['compiledExecute']);
    expect(send.compiled).toEqual(send.reference);
    expect(send.compiled.text).toContain('{"sent":{"__typename":"Message","kind":"READY"');
    const missing = await both((s) => answer(s, `{ message(id: "999999") { id payload } }`));
    expect(missing.compiled).toEqual(missing.reference);
    expect(missing.compiled.text).toBe('{"data":{"message":null}}');
    const floor = await both((s) => answer(s, '{ __typename }'));
    expect(floor.ran).toEqual(['compiledExecute']);
    expect(floor.compiled).toEqual(floor.reference);
  });

  it('leaves other shapes to the executor', async () => {
    const shapes = [
      `{ queues { name } __typename }`,
      `query { queue(name: "c-queue") { name stats { ready } } }`,
      `fragment F on Queue { name } query { queue(name: "c-queue") { ...F } }`,
      `query($skip: Boolean!) { queue(name: "c-queue") { name @skip(if: $skip) } }`,
      `{ __schema { queryType { name } } }`,
      `{ queues { __proto__: name } }`,
    ];
    for (const query of shapes) {
      const result = await both((s) => answer(s, query, { skip: false }));
      expect(result.ran, query).not.toContain('compiledExecute');
      expect(result.compiled, query).toEqual(result.reference);
    }
  });
});

describe('compiled execution leaves every error to the executor', () => {
  const cases: [string, string, Record<string, unknown>][] = [
    ['a variable of the wrong type', RECEIVE, { queue: 'c-queue', max: 'many' }],
    ['a required variable missing', SEND, { queue: 'c-queue' }],
    [
      'an input object with an unknown field',
      SEND,
      { queue: 'c-queue', message: { payload: 1, x: 1 } },
    ],
    [
      'a malformed DateTime variable',
      SEND,
      { queue: 'c-queue', message: { payload: 1, runAt: 'soon' } },
    ],
    ['a queue that does not exist', SEND, { queue: 'c-nobody', message: { payload: 1 } }],
    ['an argument out of range', RECEIVE, { queue: 'c-queue', max: 0 }],
    ['a receipt that is not one', ACK, { receipt: 'not-a-receipt' }],
    ['a null in a list of non-null strings', ACK_BATCH, { receipts: ['1.x', null] }],
    ['a number for a string', ACK, { receipt: 7 }],
    ['an Int beyond 32 bits', RECEIVE, { queue: 'c-queue', max: 2 ** 31 }],
    ['a fraction for an Int', RECEIVE, { queue: 'c-queue', max: 1.5 }],
    ['a null for a non-null variable', RECEIVE, { queue: null }],
  ];
  for (const [what, query, variables] of cases) {
    it(`${what}: same status and body`, async () => {
      const result = await both((s) => answer(s, query, variables));
      expect(result.compiled).toEqual(result.reference);
      expect(result.compiled.text).toContain('"errors"');
    });
  }

  it('an unexpected error: masked the same, logged once', async () => {
    // A fault nobody translates, as in errors.test.ts: this file's database copy loses the
    // SQL function behind redrive.
    await sql`DROP FUNCTION holdline.redrive(text, integer)`.execute(t.db);
    const before = [compiled.logs.length, reference.logs.length];
    const result = await both((s) => answer(s, `mutation { redrive(queue: "c-queue") }`));
    expect(result.ran).toEqual(['compiledExecute']);
    expect(result.compiled).toEqual(result.reference);
    expect(result.compiled.text).toContain('"code":"INTERNAL_SERVER_ERROR"');
    const logged = [compiled, reference].map((service, i) =>
      service.logs.slice(before[i]).filter((line) => line.level >= 50),
    );
    expect(logged[0]).toHaveLength(1);
    expect(logged[0]![0]).toMatchObject({ msg: 'unexpected error', path: 'redrive' });
    expect(logged[1]).toHaveLength(1);
  });
});

describe('compiled execution, when a result does not fit the schema', () => {
  // Fault injection on the shared engine: a value no correct engine returns, so that the
  // compiled completion must hand it back to the executor (the root resolver replays it).
  const engines = (): QueueEngine[] => [compiled.engine, reference.engine];
  let sends: QueueEngine['send'][] = [];
  beforeAll(() => {
    sends = engines().map((engine) => engine.send.bind(engine));
  });
  afterAll(() => {
    engines().forEach((engine, i) => (engine.send = sends[i]!));
  });

  const broken: [string, (message: Record<string, unknown>) => Record<string, unknown>][] = [
    ['a null for a non-null field', (m) => ({ ...m, queue: null })],
    ['a value a scalar cannot serialize', (m) => ({ ...m, createdAt: 'yesterday' })],
    ['a value for an enum that has none such', (m) => ({ ...m, state: 'LOST' })],
  ];
  for (const [what, corrupt] of broken) {
    it(`${what}: the executor's errors, and the send ran once`, async () => {
      let calls = 0;
      engines().forEach((engine, i) => {
        engine.send = async (...args) => {
          calls++;
          const message = await sends[i]!(...args);
          return corrupt(message as unknown as Record<string, unknown>) as never;
        };
      });
      const result = await both((s) =>
        answer(s, SEND, { queue: 'c-queue', message: { payload: 1 } }),
      );
      expect(result.ran).toEqual(['compiledExecute']);
      expect(result.compiled).toEqual(result.reference);
      expect(result.compiled.text).toContain('"errors"');
      expect(calls).toBe(2); // once per service: the replay did not send again
    });
  }
});
