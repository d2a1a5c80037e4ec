// The SQL contract as a consumer in another language uses it: plain SQL through pg, no
// engine, no kysely. receive → ack / ack_batch / extend_lease, each fenced by the lease
// token (migrations/0007).
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
let c: pg.Client;
let queueNumber = 0;
let queue: string;

beforeAll(async () => {
  t = await createTestDatabase();
  c = await t.connect();
});
afterAll(async () => {
  await c.end();
  await t.drop();
});
beforeEach(async () => {
  queue = `sql-api-${++queueNumber}`;
  await c.query('INSERT INTO holdline.queues (name) VALUES ($1)', [queue]);
});

interface Leased {
  id: string;
  lease_token: string;
  lease_expires_at: Date;
}

async function sendAndReceive(count: number, visibilitySeconds = 30): Promise<Leased[]> {
  for (let i = 0; i < count; i++) {
    await c.query('SELECT holdline.send($1, $2::jsonb)', [queue, JSON.stringify({ i })]);
  }
  const { rows } = await c.query<Leased>(
    'SELECT id, lease_token, lease_expires_at FROM holdline.receive($1, $2, $3)',
    [queue, count, visibilitySeconds],
  );
  expect(rows).toHaveLength(count);
  return rows;
}

async function messagesLeft(): Promise<number> {
  const { rows } = await c.query<{ n: string }>(
    'SELECT count(*) AS n FROM holdline.messages WHERE queue = $1',
    [queue],
  );
  return Number(rows[0]!.n);
}

/** Ends the lease and leases the message again, as the reaper and a second consumer would. */
async function releaseAndReceiveAgain(): Promise<Leased> {
  await c.query(
    `UPDATE holdline.messages SET lease_token = NULL, lease_expires_at = NULL WHERE queue = $1`,
    [queue],
  );
  const { rows } = await c.query<Leased>(
    'SELECT id, lease_token, lease_expires_at FROM holdline.receive($1, 1)',
    [queue],
  );
  return rows[0]!;
}

describe('holdline.ack', () => {
  it('deletes a received message and returns its queue and age', async () => {
    const [leased] = await sendAndReceive(1);
    const { rows } = await c.query<{ queue: string; age_seconds: number }>(
      'SELECT * FROM holdline.ack($1, $2)',
      [leased!.id, leased!.lease_token],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.queue).toBe(queue);
    expect(rows[0]!.age_seconds).toBeGreaterThanOrEqual(0);
    expect(await messagesLeft()).toBe(0);
  });

  it('acks nothing with a stale lease token after the message was leased again', async () => {
    const [stale] = await sendAndReceive(1);
    const current = await releaseAndReceiveAgain();
    expect(current.lease_token).not.toBe(stale!.lease_token);

    const { rows } = await c.query('SELECT * FROM holdline.ack($1, $2)', [
      stale!.id,
      stale!.lease_token,
    ]);
    expect(rows).toHaveLength(0);
    const { rows: still } = await c.query<{ lease_token: string }>(
      'SELECT lease_token FROM holdline.messages WHERE id = $1',
      [stale!.id],
    );
    expect(still[0]!.lease_token).toBe(current.lease_token);
  });
});

describe('holdline.ack_batch', () => {
  it('acks the deliveries whose lease is current and reports only those', async () => {
    const leased = await sendAndReceive(3);
    const ids = leased.map((l) => l.id);
    const tokens = leased.map((l) => l.lease_token);
    // The last one's token is wrong: as a receipt from an earlier lease would be.
    tokens[2] = '00000000-0000-4000-8000-000000000000';
    const { rows } = await c.query<{ id: string; queue: string }>(
      'SELECT * FROM holdline.ack_batch($1::bigint[], $2::uuid[]) ORDER BY id',
      [ids, tokens],
    );
    expect(rows.map((r) => r.id)).toEqual(ids.slice(0, 2));
    expect(rows.every((r) => r.queue === queue)).toBe(true);
    expect(await messagesLeft()).toBe(1);
  });

  it('refuses arrays of different lengths and changes nothing', async () => {
    const leased = await sendAndReceive(2);
    await expect(
      c.query('SELECT * FROM holdline.ack_batch($1::bigint[], $2::uuid[])', [
        leased.map((l) => l.id),
        [leased[0]!.lease_token],
      ]),
    ).rejects.toMatchObject({ code: 'HL400' });
    expect(await messagesLeft()).toBe(2);
  });
});

describe('holdline.ack_batch with queue patterns', () => {
  it('acks only deliveries of queues matching a pattern, leaving the others leased', async () => {
    const leased = await sendAndReceive(2);
    const other = `${queue}_other`;
    await c.query('INSERT INTO holdline.queues (name) VALUES ($1)', [other]);
    await c.query('SELECT holdline.send($1, $2::jsonb)', [other, '{}']);
    const { rows: theirs } = await c.query<Leased>(
      'SELECT id, lease_token FROM holdline.receive($1, 1)',
      [other],
    );
    const ids = [...leased.map((l) => l.id), theirs[0]!.id];
    const tokens = [...leased.map((l) => l.lease_token), theirs[0]!.lease_token];
    const { rows } = await c.query<{ id: string }>(
      'SELECT id FROM holdline.ack_batch($1::bigint[], $2::uuid[], $3::text[]) ORDER BY id',
      // `_` escaped: a literal underscore, so the pattern is the queue's name exactly.
      [ids, tokens, [queue.replace(/_/g, '\\_')]],
    );
    expect(rows.map((r) => r.id)).toEqual(leased.map((l) => l.id));
    expect(await messagesLeft()).toBe(0);
    const { rows: still } = await c.query<{ lease_token: string }>(
      'SELECT lease_token FROM holdline.messages WHERE id = $1',
      [theirs[0]!.id],
    );
    expect(still[0]!.lease_token).toBe(theirs[0]!.lease_token);
    // NULL patterns: any queue.
    const { rows: any } = await c.query<{ id: string }>(
      'SELECT id FROM holdline.ack_batch($1::bigint[], $2::uuid[], NULL)',
      [[theirs[0]!.id], [theirs[0]!.lease_token]],
    );
    expect(any.map((r) => r.id)).toEqual([theirs[0]!.id]);
  });
});

describe('holdline.extend_lease', () => {
  it('sets the lease to end the given seconds after now and keeps the token', async () => {
    const [leased] = await sendAndReceive(1, 5);
    const { rows } = await c.query<{ lease_token: string; lease_expires_at: Date; now: Date }>(
      'SELECT m.lease_token, m.lease_expires_at, now() AS now FROM holdline.extend_lease($1, $2, 600) m',
      [leased!.id, leased!.lease_token],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.lease_token).toBe(leased!.lease_token);
    expect(rows[0]!.lease_expires_at.getTime() - rows[0]!.now.getTime()).toBe(600_000);
  });

  it('takes a clock: the lease ends the given seconds after p_now', async () => {
    const [leased] = await sendAndReceive(1);
    const now = new Date('2030-01-01T00:00:00Z');
    const { rows } = await c.query<{ lease_expires_at: Date }>(
      'SELECT lease_expires_at FROM holdline.extend_lease($1, $2, 60, $3)',
      [leased!.id, leased!.lease_token, now],
    );
    expect(rows[0]!.lease_expires_at.toISOString()).toBe('2030-01-01T00:01:00.000Z');
  });

  it('extends nothing with a stale lease token', async () => {
    const [stale] = await sendAndReceive(1);
    const current = await releaseAndReceiveAgain();
    const { rows } = await c.query('SELECT * FROM holdline.extend_lease($1, $2, 600)', [
      stale!.id,
      stale!.lease_token,
    ]);
    expect(rows).toHaveLength(0);
    const { rows: after } = await c.query<{ lease_expires_at: Date }>(
      'SELECT lease_expires_at FROM holdline.messages WHERE id = $1',
      [stale!.id],
    );
    expect(after[0]!.lease_expires_at).toEqual(current.lease_expires_at);
  });

  it('refuses seconds outside 1 to 43,200 and changes nothing', async () => {
    const [leased] = await sendAndReceive(1);
    for (const seconds of [0, 43_201, null]) {
      await expect(
        c.query('SELECT * FROM holdline.extend_lease($1, $2, $3)', [
          leased!.id,
          leased!.lease_token,
          seconds,
        ]),
      ).rejects.toMatchObject({ code: 'HL400' });
    }
    const { rows } = await c.query<{ lease_expires_at: Date }>(
      'SELECT lease_expires_at FROM holdline.messages WHERE id = $1',
      [leased!.id],
    );
    expect(rows[0]!.lease_expires_at).toEqual(leased!.lease_expires_at);
  });
});
