import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  QueueEngine,
  ack,
  ackBatch,
  configureQueue,
  createQueue,
  extendLease,
  getMessage,
  nack,
  receive,
  redrive,
  send,
  sendBatch,
} from '../../src/queue/operations.ts';
import type { QueueConfig, QueueErrorCode, SendInput } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
/** No listener and not started: nothing writes in the background. */
let engine: QueueEngine;

beforeAll(async () => {
  t = await createTestDatabase();
  engine = new QueueEngine({ db: t.db, logger: pino({ level: 'silent' }) });
});
afterAll(async () => {
  await engine?.stop();
  await t?.drop();
});

interface Snapshot {
  messages: number;
  queues: number;
  bindings: number;
  /** Every column of every row, so an update (a lease, an attempt) shows too. */
  messages_digest: string;
  queues_digest: string;
}

async function snapshot(): Promise<Snapshot> {
  const { rows } = await sql<Snapshot>`
    SELECT (SELECT count(*)::int FROM holdline.messages) AS messages,
           (SELECT count(*)::int FROM holdline.queues) AS queues,
           (SELECT count(*)::int FROM holdline.topic_bindings) AS bindings,
           (SELECT md5(coalesce(string_agg(m::text, '|' ORDER BY m.id), ''))
              FROM holdline.messages m) AS messages_digest,
           (SELECT md5(coalesce(string_agg(q::text, '|' ORDER BY q.name), ''))
              FROM holdline.queues q) AS queues_digest`.execute(t.db);
  return rows[0]!;
}

/** Asserts that `action` fails with `code` and that no queue, message or binding changed. */
async function expectRefused(action: () => Promise<unknown>, code: QueueErrorCode): Promise<void> {
  const before = await snapshot();
  await expect(action()).rejects.toMatchObject({ code });
  expect(await snapshot()).toEqual(before);
}

/** Asserts that an SQL call fails with `sqlState` and that nothing changed. */
async function expectSqlRefused(
  statement: ReturnType<typeof sql>,
  sqlState: 'HL400' | 'HL404' | 'HL413',
): Promise<void> {
  const before = await snapshot();
  await expect(statement.execute(t.db)).rejects.toMatchObject({ code: sqlState });
  expect(await snapshot()).toEqual(before);
}

/** A queue holding one ready message, so a call that slipped through would change it. */
async function queueWithMessage(name: string, config?: Partial<QueueConfig>): Promise<string> {
  await createQueue(t.db, { name, config });
  await send(t.db, { queue: name, message: { payload: { name } } });
  return name;
}

/** A queue with one leased message; returns its receipt. */
async function leasedReceipt(queue: string): Promise<string> {
  await queueWithMessage(queue);
  const [delivery] = await receive(t.db, { queue });
  return delivery!.receipt;
}

describe('queue names', () => {
  it.each([
    ['empty', ''],
    ['129 characters long', 'a'.repeat(129)],
    ['with a space', 'has space'],
    ['an SQL fragment', "x'; drop table holdline.messages; --"],
    ['a quoted SQL fragment', 'x"); DELETE FROM holdline.queues; --'],
    ['with a slash', 'a/b'],
    ['non-ASCII', 'čekárna'],
    ['with a newline', 'a\nb'],
  ])('refuses a queue name that is %s with BAD_USER_INPUT', async (_label, name) => {
    await expectRefused(() => createQueue(t.db, { name }), 'BAD_USER_INPUT');
    await expectRefused(
      () => send(t.db, { queue: name, message: { payload: 1 } }),
      'BAD_USER_INPUT',
    );
    await expectRefused(() => receive(t.db, { queue: name }), 'BAD_USER_INPUT');
  });

  it('accepts a 128-character name without a default dead-letter queue, and refuses one that needs it', async () => {
    const name = 'n'.repeat(128);
    // '<name>.dlq' would be 132 characters: the caller must choose.
    await expectRefused(() => createQueue(t.db, { name }), 'BAD_USER_INPUT');
    const created = await createQueue(t.db, { name, config: { deadLetterQueue: null } });
    expect(created.name).toBe(name);
  });

  it('refuses to create a queue twice with QUEUE_EXISTS and keeps the first config', async () => {
    await createQueue(t.db, { name: 'valid-twice', config: { maxAttempts: 3 } });
    await expectRefused(
      () => createQueue(t.db, { name: 'valid-twice', config: { maxAttempts: 7 } }),
      'QUEUE_EXISTS',
    );
    const { rows } = await sql<{ max_attempts: number }>`
      SELECT max_attempts FROM holdline.queues WHERE name = 'valid-twice'`.execute(t.db);
    expect(rows).toEqual([{ max_attempts: 3 }]);
  });

  it('refuses operations on a queue that does not exist with QUEUE_NOT_FOUND, creating nothing', async () => {
    const queue = 'valid-missing';
    await expectRefused(() => send(t.db, { queue, message: { payload: 1 } }), 'QUEUE_NOT_FOUND');
    await expectRefused(
      () => sendBatch(t.db, { queue, messages: [{ payload: 1 }, { payload: 2 }] }),
      'QUEUE_NOT_FOUND',
    );
    await expectRefused(() => receive(t.db, { queue }), 'QUEUE_NOT_FOUND');
    await expectRefused(() => configureQueue(t.db, { name: queue, config: {} }), 'QUEUE_NOT_FOUND');
    await expectRefused(() => redrive(t.db, { queue }), 'QUEUE_NOT_FOUND');
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM holdline.queues WHERE name = ${queue}`.execute(t.db);
    expect(rows[0]!.n).toBe(0);
  });
});

describe('payload size', () => {
  it('accepts a payload of exactly maxPayloadBytes and refuses one byte more with PAYLOAD_TOO_LARGE', async () => {
    const queue = 'valid-payload';
    await createQueue(t.db, { name: queue, config: { maxPayloadBytes: 100 } });
    // The JSON text of a string is its characters plus two quotes.
    await expectRefused(
      () => send(t.db, { queue, message: { payload: 'x'.repeat(99) } }),
      'PAYLOAD_TOO_LARGE',
    );
    const fits = await send(t.db, { queue, message: { payload: 'x'.repeat(98) } });
    expect(fits.payload).toBe('x'.repeat(98));
  });

  it('counts payload size in bytes, not characters', async () => {
    const queue = 'valid-payload-bytes';
    await createQueue(t.db, { name: queue, config: { maxPayloadBytes: 100 } });
    // 'é' is two bytes in UTF-8: 50 of them and two quotes make 102 bytes.
    await expectRefused(
      () => send(t.db, { queue, message: { payload: 'é'.repeat(50) } }),
      'PAYLOAD_TOO_LARGE',
    );
    await expect(
      send(t.db, { queue, message: { payload: 'é'.repeat(49) } }),
    ).resolves.toBeDefined();
  });

  it('refuses a whole batch with PAYLOAD_TOO_LARGE when one message is too large', async () => {
    const queue = 'valid-payload-batch';
    await createQueue(t.db, { name: queue, config: { maxPayloadBytes: 50 } });
    await expectRefused(
      () =>
        sendBatch(t.db, {
          queue,
          messages: [{ payload: 'ok' }, { payload: 'x'.repeat(60) }, { payload: 'ok too' }],
        }),
      'PAYLOAD_TOO_LARGE',
    );
  });
});

describe('payload size messages', () => {
  it('says "the payload is N bytes" for a single send, and names the message in a batch', async () => {
    const queue = 'valid-payload-words';
    await createQueue(t.db, { name: queue, config: { maxPayloadBytes: 50 } });
    const single = `the payload is 62 bytes; queue "${queue}" accepts at most 50 bytes`;
    const payload = 'x'.repeat(60);
    for (const message of [{ payload }, { payload, dedupKey: 'k' }]) {
      const before = await snapshot();
      await expect(send(t.db, { queue, message })).rejects.toMatchObject({
        code: 'PAYLOAD_TOO_LARGE',
        message: single,
      });
      expect(await snapshot()).toEqual(before);
    }
    await expect(
      sql`SELECT holdline.send(${queue}, to_jsonb(${payload}::text))`.execute(t.db),
    ).rejects.toMatchObject({ code: 'HL413', message: single });
    await expect(
      sendBatch(t.db, { queue, messages: [{ payload: 'ok' }, { payload }] }),
    ).rejects.toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      message: `message 2 has a payload of 62 bytes; queue "${queue}" accepts at most 50 bytes`,
    });
  });
});

describe('receive parameters', () => {
  it.each([0, 1001, 1.5, -1])('refuses max %j with BAD_USER_INPUT', async (max) => {
    const queue = await queueWithMessage(`valid-receive-max-${String(max).replace('.', '_')}`);
    await expectRefused(() => receive(t.db, { queue, max }), 'BAD_USER_INPUT');
  });

  it.each([0, 43_201, 1.5])(
    'refuses visibility timeout %j with BAD_USER_INPUT',
    async (seconds) => {
      const queue = await queueWithMessage(`valid-visibility-${String(seconds).replace('.', '_')}`);
      await expectRefused(
        () => receive(t.db, { queue, visibilityTimeoutSeconds: seconds }),
        'BAD_USER_INPUT',
      );
    },
  );

  it.each([21, -1, 1.5])('refuses waitSeconds %j with BAD_USER_INPUT', async (waitSeconds) => {
    const queue = await queueWithMessage(`valid-wait-${String(waitSeconds).replace('.', '_')}`);
    await expectRefused(() => engine.receive({ queue, waitSeconds }), 'BAD_USER_INPUT');
  });
});

describe('send input', () => {
  const queue = 'valid-send';
  const yearSeconds = 31_536_000;
  beforeAll(async () => {
    await createQueue(t.db, { name: queue });
  });

  it.each<[string, SendInput]>([
    ['delaySeconds -1', { payload: 1, delaySeconds: -1 }],
    ['delaySeconds over one year', { payload: 1, delaySeconds: yearSeconds + 1 }],
    ['fractional delaySeconds', { payload: 1, delaySeconds: 1.5 }],
    [
      'runAt over one year ahead',
      { payload: 1, runAt: new Date(Date.now() + 2 * yearSeconds * 1000) },
    ],
    ['an invalid runAt', { payload: 1, runAt: new Date(Number.NaN) }],
    ['delaySeconds and runAt together', { payload: 1, delaySeconds: 5, runAt: new Date() }],
    ['a 257-character dedupKey', { payload: 1, dedupKey: 'd'.repeat(257) }],
    ['an empty dedupKey', { payload: 1, dedupKey: '' }],
    ['a 257-character groupKey', { payload: 1, groupKey: 'g'.repeat(257) }],
    ['headers that are an array', { payload: 1, headers: [1, 2] as never }],
    ['headers that are a string', { payload: 1, headers: 'h' as never }],
    ['no payload', { payload: undefined }],
    ['a null payload', { payload: null }],
    ['a fractional priority', { payload: 1, priority: 1.5 }],
    ['a priority beyond 32 bits', { payload: 1, priority: 2 ** 31 }],
  ])('refuses a message with %s with BAD_USER_INPUT', async (_label, message) => {
    await expectRefused(() => send(t.db, { queue, message }), 'BAD_USER_INPUT');
    await expectRefused(
      () => sendBatch(t.db, { queue, messages: [{ payload: 'fine' }, message] }),
      'BAD_USER_INPUT',
    );
  });

  it('accepts the largest values: a 256-character dedup key and a delay of one year', async () => {
    const sent = await send(t.db, {
      queue,
      message: { payload: 1, dedupKey: 'd'.repeat(256), delaySeconds: yearSeconds },
    });
    expect(sent).toMatchObject({ dedupKey: 'd'.repeat(256), state: 'DELAYED' });
  });

  it('refuses an empty sendBatch and one of 1001 messages with BAD_USER_INPUT', async () => {
    await expectRefused(() => sendBatch(t.db, { queue, messages: [] }), 'BAD_USER_INPUT');
    const tooMany = Array.from({ length: 1001 }, (_, i) => ({ payload: i }));
    await expectRefused(() => sendBatch(t.db, { queue, messages: tooMany }), 'BAD_USER_INPUT');
  });
});

describe('receipt operations', () => {
  it.each([-1, 1.5, 31_536_001])(
    'refuses nack delaySeconds %j with BAD_USER_INPUT and keeps the lease',
    async (delaySeconds) => {
      const receipt = await leasedReceipt(`valid-nack-${String(delaySeconds).replace('.', '_')}`);
      await expectRefused(() => nack(t.db, { receipt, delaySeconds }), 'BAD_USER_INPUT');
      // The receipt still holds the lease.
      await expect(ack(t.db, { receipt })).resolves.toBeDefined();
    },
  );

  it.each([0, 43_201, 1.5])(
    'refuses extendLease seconds %j with BAD_USER_INPUT and keeps the lease as it was',
    async (seconds) => {
      const receipt = await leasedReceipt(`valid-extend-${String(seconds).replace('.', '_')}`);
      await expectRefused(() => extendLease(t.db, { receipt, seconds }), 'BAD_USER_INPUT');
    },
  );

  it('refuses malformed receipts with BAD_USER_INPUT', async () => {
    await leasedReceipt('valid-receipts');
    for (const receipt of [
      '',
      'garbage',
      '1.not-a-uuid',
      '0.00000000-0000-0000-0000-000000000000',
    ]) {
      await expectRefused(() => ack(t.db, { receipt }), 'BAD_USER_INPUT');
      await expectRefused(() => nack(t.db, { receipt }), 'BAD_USER_INPUT');
      await expectRefused(() => extendLease(t.db, { receipt, seconds: 10 }), 'BAD_USER_INPUT');
    }
    await expectRefused(() => ackBatch(t.db, { receipts: [] }), 'BAD_USER_INPUT');
  });
});

describe('queue config', () => {
  it.each<[string, Partial<QueueConfig>]>([
    ['maxAttempts 0', { maxAttempts: 0 }],
    ['maxAttempts 1001', { maxAttempts: 1001 }],
    ['fractional maxAttempts', { maxAttempts: 2.5 }],
    ['visibilityTimeoutSeconds 0', { visibilityTimeoutSeconds: 0 }],
    ['visibilityTimeoutSeconds 43201', { visibilityTimeoutSeconds: 43_201 }],
    [
      'backoffInitialSeconds above backoffMaxSeconds',
      { backoffInitialSeconds: 10, backoffMaxSeconds: 5 },
    ],
    ['backoffInitialSeconds above the default max', { backoffInitialSeconds: 301 }],
    ['a negative backoffInitialSeconds', { backoffInitialSeconds: -1 }],
    ['a NaN backoffMaxSeconds', { backoffMaxSeconds: Number.NaN }],
    ['retentionSeconds 59', { retentionSeconds: 59 }],
    ['maxPayloadBytes 0', { maxPayloadBytes: 0 }],
    ['a malformed deadLetterQueue', { deadLetterQueue: 'bad name' }],
  ])('refuses a queue config with %s with BAD_USER_INPUT', async (_label, config) => {
    await expectRefused(
      () => createQueue(t.db, { name: 'valid-config-new', config }),
      'BAD_USER_INPUT',
    );
  });

  it('refuses a deadLetterQueue equal to the queue itself', async () => {
    await expectRefused(
      () =>
        createQueue(t.db, {
          name: 'valid-self-dlq',
          config: { deadLetterQueue: 'valid-self-dlq' },
        }),
      'BAD_USER_INPUT',
    );
    await createQueue(t.db, { name: 'valid-self-dlq' });
    await expectRefused(
      () =>
        configureQueue(t.db, {
          name: 'valid-self-dlq',
          config: { deadLetterQueue: 'valid-self-dlq' },
        }),
      'BAD_USER_INPUT',
    );
  });

  it('refuses a configureQueue that would put backoffInitialSeconds above the current max', async () => {
    await createQueue(t.db, {
      name: 'valid-configure',
      config: { backoffInitialSeconds: 1, backoffMaxSeconds: 60 },
    });
    await expectRefused(
      () =>
        configureQueue(t.db, { name: 'valid-configure', config: { backoffInitialSeconds: 61 } }),
      'BAD_USER_INPUT',
    );
    await expectRefused(
      () => configureQueue(t.db, { name: 'valid-configure', config: { backoffMaxSeconds: 0.5 } }),
      'BAD_USER_INPUT',
    );
    await expectRefused(
      () => configureQueue(t.db, { name: 'valid-configure', config: { maxAttempts: 0 } }),
      'BAD_USER_INPUT',
    );
  });
});

describe('other lookups', () => {
  it('refuses a malformed message id and a redrive max of 0 with BAD_USER_INPUT', async () => {
    await createQueue(t.db, { name: 'valid-lookups' });
    for (const id of ['', 'abc', '0', '-1', '1.5', '99999999999999999999']) {
      await expectRefused(() => getMessage(t.db, { id }), 'BAD_USER_INPUT');
    }
    await expectRefused(() => redrive(t.db, { queue: 'valid-lookups', max: 0 }), 'BAD_USER_INPUT');
  });
});

describe('SQL functions', () => {
  const queue = 'valid-sql';
  beforeAll(async () => {
    await createQueue(t.db, { name: queue, config: { maxPayloadBytes: 100 } });
    // A ready message: a receive or redrive that slipped through would lease or move it.
    await send(t.db, { queue, message: { payload: 'waiting' } });
  });

  it('raises HL404 from send, send_batch, receive and redrive for a queue that does not exist', async () => {
    await expectSqlRefused(sql`SELECT holdline.send('valid-sql-missing', '1'::jsonb)`, 'HL404');
    await expectSqlRefused(
      sql`SELECT * FROM holdline.send_batch('valid-sql-missing', ARRAY['1'::jsonb])`,
      'HL404',
    );
    await expectSqlRefused(
      sql`SELECT holdline.send_many('valid-sql-missing', '[{"payload": 1}]')`,
      'HL404',
    );
    await expectSqlRefused(sql`SELECT * FROM holdline.receive('valid-sql-missing', 1)`, 'HL404');
    await expectSqlRefused(sql`SELECT holdline.redrive('valid-sql-missing')`, 'HL404');
  });

  it('raises HL413 from send for a payload over the queue’s maxPayloadBytes', async () => {
    await expectSqlRefused(
      sql`SELECT holdline.send(${queue}, to_jsonb(repeat('x', 200)))`,
      'HL413',
    );
    await expectSqlRefused(
      sql`SELECT holdline.send_many(${queue}, jsonb_build_array(jsonb_build_object('payload', 1), jsonb_build_object('payload', repeat('x', 200))))`,
      'HL413',
    );
  });

  it.each([
    ['a delay of -1', sql`SELECT holdline.send(${queue}, '1'::jsonb, -1)`],
    ['a delay over one year', sql`SELECT holdline.send(${queue}, '1'::jsonb, 31536001)`],
    ['a NULL delay', sql`SELECT holdline.send(${queue}, '1'::jsonb, NULL)`],
    ['a NULL payload', sql`SELECT holdline.send(${queue}, NULL::jsonb)`],
    ['a JSON null payload', sql`SELECT holdline.send(${queue}, 'null'::jsonb)`],
    [
      'send_at more than a year ahead',
      sql`SELECT holdline.send_at(${queue}, '1'::jsonb, now() + interval '1 year 1 day')`,
    ],
    [
      'a 257-character dedup key',
      sql`SELECT holdline.send(${queue}, '1'::jsonb, dedup_key => repeat('d', 257))`,
    ],
    ['an empty dedup key', sql`SELECT holdline.send(${queue}, '1'::jsonb, dedup_key => '')`],
    [
      'a 257-character group key',
      sql`SELECT holdline.send(${queue}, '1'::jsonb, group_key => repeat('g', 257))`,
    ],
    ['array headers', sql`SELECT holdline.send(${queue}, '1'::jsonb, headers => '[1]'::jsonb)`],
    [
      'send_batch arrays of different lengths',
      sql`SELECT * FROM holdline.send_batch(${queue}, ARRAY['1'::jsonb, '2'::jsonb], ARRAY[now()])`,
    ],
    [
      'send_batch with one NULL payload',
      sql`SELECT * FROM holdline.send_batch(${queue}, ARRAY['1'::jsonb, NULL::jsonb])`,
    ],
    [
      'send_many with a JSON null payload',
      sql`SELECT holdline.send_many(${queue}, '[{"payload": 1}, {"payload": null}]')`,
    ],
    ['send_many without a payload', sql`SELECT holdline.send_many(${queue}, '[{"priority": 1}]')`],
    [
      'send_many with a dedup key',
      sql`SELECT holdline.send_many(${queue}, '[{"payload": 1, "dedup_key": "d"}]')`,
    ],
    [
      'send_many with an empty group key',
      sql`SELECT holdline.send_many(${queue}, '[{"payload": 1, "group_key": ""}]')`,
    ],
    [
      'send_many with array headers',
      sql`SELECT holdline.send_many(${queue}, '[{"payload": 1, "headers": [1]}]')`,
    ],
    [
      'send_many with a run_at two years ahead',
      sql`SELECT holdline.send_many(${queue}, jsonb_build_array(jsonb_build_object('payload', 1, 'run_at', now() + interval '2 years')))`,
    ],
    [
      'send_many with an object instead of an array',
      sql`SELECT holdline.send_many(${queue}, '{"payload": 1}')`,
    ],
    ['publish to a malformed topic', sql`SELECT holdline.publish('orders.*', '1'::jsonb)`],
  ])('raises HL400 for %s and writes nothing', async (_label, statement) => {
    await expectSqlRefused(statement, 'HL400');
  });

  it.each([
    ['max 0', sql`SELECT * FROM holdline.receive(${queue}, 0)`],
    ['max -1', sql`SELECT * FROM holdline.receive(${queue}, -1)`],
    ['max NULL', sql`SELECT * FROM holdline.receive(${queue}, NULL)`],
    ['max 1001', sql`SELECT * FROM holdline.receive(${queue}, 1001)`],
    ['a visibility timeout of 0', sql`SELECT * FROM holdline.receive(${queue}, 1, 0)`],
    ['a negative visibility timeout', sql`SELECT * FROM holdline.receive(${queue}, 1, -5)`],
    ['a visibility timeout of 43201', sql`SELECT * FROM holdline.receive(${queue}, 1, 43201)`],
    ['redrive max 0', sql`SELECT holdline.redrive(${queue}, 0)`],
    ['redrive max -1', sql`SELECT holdline.redrive(${queue}, -1)`],
  ])('raises HL400 for %s and leases or moves nothing', async (_label, statement) => {
    await expectSqlRefused(statement, 'HL400');
  });

  it('raises HL400 from nack for a negative delay and keeps the lease', async () => {
    const receipt = await leasedReceipt('valid-sql-nack');
    const [id, token] = receipt.split('.');
    await expectSqlRefused(
      sql`SELECT * FROM holdline.nack(${id}::bigint, ${token}::uuid, -1)`,
      'HL400',
    );
    await expect(ack(t.db, { receipt })).resolves.toBeDefined();
  });

  it('rolls back the caller’s transaction work with the failed send', async () => {
    const before = await snapshot();
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`SELECT holdline.send(${queue}, '"fine"'::jsonb)`.execute(trx);
        await sql`SELECT holdline.send(${queue}, '1'::jsonb, -5)`.execute(trx);
      }),
    ).rejects.toMatchObject({ code: 'HL400' });
    expect(await snapshot()).toEqual(before);
  });
});
