import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { idleReaper } from '../helpers/factories.ts';
import { onlyErrorCode, startSecureService, subscribeSse } from '../security/harness.ts';
import type { SecureService } from '../security/harness.ts';
import type { JsonObject } from './harness.ts';

let t: TestDatabase;
let svc: SecureService;
let admin: string;

const ARCHIVED = `query Archived($queue: String!, $filter: ArchiveFilter, $first: Int, $after: String,
                                  $from: DateTime, $to: DateTime) {
  archivedMessages(queue: $queue, filter: $filter, first: $first, after: $after, from: $from, to: $to) {
    messages { id queue payload headers priority attempts groupKey sentAt ackedAt }
    endCursor
    hasNextPage
  }
}`;
const REPLAY = `mutation Replay($queue: String!, $into: String, $filter: ArchiveFilter, $from: DateTime,
                                $to: DateTime, $ratePerSecond: Float, $dryRun: Boolean) {
  replay(queue: $queue, into: $into, filter: $filter, from: $from, to: $to,
         ratePerSecond: $ratePerSecond, dryRun: $dryRun) {
    id queue into state matched replayed dryRun ratePerSecond filter
  }
}`;
const JOB = `query Job($id: ID!) { replayJob(id: $id) { id state matched replayed } }`;

interface ArchivedPage {
  archivedMessages: {
    messages: JsonObject[];
    endCursor: string | null;
    hasNextPage: boolean;
  };
}
interface ReplayResult {
  replay: { id: string; state: string; matched: number; replayed: number; into: string };
}

beforeAll(async () => {
  t = await createTestDatabase();
  svc = await startSecureService(t);
  admin = await svc.token('archive-admin', 'admin');
  const created = await svc.ok<{ createQueue: { config: { archiveSeconds: number } } }>(
    admin,
    `mutation { createQueue(name: "gq.orders", config: { archiveSeconds: 86400 }) {
       config { archiveSeconds } } }`,
  );
  expect(created.createQueue.config.archiveSeconds).toBe(86_400);
  await svc.ok(admin, `mutation { createQueue(name: "gq.backfill") { name } }`);
  await svc.ok(admin, `mutation { createQueue(name: "gq.other") { name } }`);
  const messages = Array.from({ length: 6 }, (_, i) => ({
    payload: { i, kind: i % 2 === 0 ? 'even' : 'odd' },
    headers: { n: i },
  }));
  await svc.ok(
    admin,
    `mutation ($m: [SendInput!]!) { sendBatch(queue: "gq.orders", messages: $m) { id } }`,
    { m: messages },
  );
  const received = await svc.ok<{ receive: { receipt: string }[] }>(
    admin,
    `mutation { receive(queue: "gq.orders", max: 10) { receipt } }`,
  );
  await svc.ok(admin, `mutation ($r: [String!]!) { ackBatch(receipts: $r) }`, {
    r: received.receive.map((d) => d.receipt),
  });
});
afterAll(async () => {
  await svc.stop();
  await t.drop();
});

describe('archivedMessages over GraphQL', () => {
  it('pages the archive with a cursor and filters by containment', async () => {
    const first = await svc.ok<ArchivedPage>(admin, ARCHIVED, { queue: 'gq.orders', first: 4 });
    expect(first.archivedMessages.messages.map((m) => (m.payload as { i: number }).i)).toEqual([
      0, 1, 2, 3,
    ]);
    expect(first.archivedMessages.hasNextPage).toBe(true);
    const second = await svc.ok<ArchivedPage>(admin, ARCHIVED, {
      queue: 'gq.orders',
      first: 4,
      after: first.archivedMessages.endCursor,
    });
    expect(second.archivedMessages.messages).toHaveLength(2);
    expect(second.archivedMessages.hasNextPage).toBe(false);
    expect(second.archivedMessages.messages[0]).toMatchObject({
      queue: 'gq.orders',
      headers: { n: 4 },
      attempts: 1,
      priority: 0,
      groupKey: null,
    });

    const odd = await svc.ok<ArchivedPage>(admin, ARCHIVED, {
      queue: 'gq.orders',
      filter: { payload: { kind: 'odd' }, headers: { n: 3 } },
    });
    expect(odd.archivedMessages.messages.map((m) => (m.payload as { i: number }).i)).toEqual([3]);
  });

  it('answers bad input with BAD_USER_INPUT and a missing queue with QUEUE_NOT_FOUND', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { queue: 'gq.orders', from: '2030-01-02T00:00:00Z', to: '2030-01-01T00:00:00Z' },
        'BAD_USER_INPUT',
      ],
      [{ queue: 'gq.orders', filter: { payload: 'odd' } }, 'BAD_USER_INPUT'],
      [{ queue: 'gq.orders', first: 0 }, 'BAD_USER_INPUT'],
      [{ queue: 'gq.orders', after: 'x' }, 'BAD_USER_INPUT'],
      [{ queue: 'gq.missing' }, 'QUEUE_NOT_FOUND'],
    ];
    for (const [variables, code] of cases) {
      expect(
        onlyErrorCode(await svc.request(admin, ARCHIVED, variables)),
        JSON.stringify(variables),
      ).toBe(code);
    }
  });
});

describe('replay over GraphQL', () => {
  it('backfills another queue from the archive, followed by a replayJob subscription', async () => {
    const started = await svc.ok<ReplayResult>(admin, REPLAY, {
      queue: 'gq.orders',
      into: 'gq.backfill',
      filter: { payload: { kind: 'even' } },
    });
    expect(started.replay).toMatchObject({ state: 'RUNNING', matched: 3, replayed: 0 });

    const sub = await subscribeSse(
      svc.baseUrl,
      admin,
      `subscription ($id: ID!) { replayJob(id: $id) { state matched replayed } }`,
      { id: started.replay.id },
    );
    try {
      expect((await sub.next()).data).toEqual({
        replayJob: { state: 'RUNNING', matched: 3, replayed: 0 },
      });
      await idleReaper(t).runReplays();
      expect((await sub.next()).data).toEqual({
        replayJob: { state: 'DONE', matched: 3, replayed: 3 },
      });
      await sub.ended();
    } finally {
      await sub.close();
    }
    const received = await svc.ok<{
      receive: { message: { payload: { i: number }; headers: JsonObject } }[];
    }>(
      admin,
      `mutation { receive(queue: "gq.backfill", max: 10) { message { payload headers } } }`,
    );
    expect(received.receive.map((d) => d.message.payload.i)).toEqual([0, 2, 4]);
    expect(received.receive[0]!.message.headers).toMatchObject({ n: 0 });
    expect(received.receive[0]!.message.headers['holdline-original-id']).toMatch(/^\d+$/);

    const jobs = await svc.ok<{ replayJobs: { id: string }[] }>(
      admin,
      `{ replayJobs(queue: "gq.orders") { id } }`,
    );
    expect(jobs.replayJobs.map((j) => j.id)).toContain(started.replay.id);
  });

  it('counts on a dry run and cancels a running job', async () => {
    const dry = await svc.ok<ReplayResult>(admin, REPLAY, { queue: 'gq.orders', dryRun: true });
    expect(dry.replay).toMatchObject({ state: 'DONE', matched: 6, replayed: 0 });
    const running = await svc.ok<ReplayResult>(admin, REPLAY, {
      queue: 'gq.orders',
      into: 'gq.other',
      ratePerSecond: 1,
    });
    const cancelled = await svc.ok<{ cancelReplay: { state: string } }>(
      admin,
      `mutation ($id: ID!) { cancelReplay(id: $id) { state } }`,
      { id: running.replay.id },
    );
    expect(cancelled.cancelReplay.state).toBe('CANCELLED');
  });

  it('answers bad input with BAD_USER_INPUT or QUEUE_NOT_FOUND and starts nothing', async () => {
    const before = await svc.ok<{ replayJobs: unknown[] }>(
      admin,
      `{ replayJobs(queue: "gq.orders") { id } }`,
    );
    const cases: [Record<string, unknown>, string][] = [
      [
        { queue: 'gq.orders', from: '2030-01-02T00:00:00Z', to: '2030-01-01T00:00:00Z' },
        'BAD_USER_INPUT',
      ],
      [{ queue: 'gq.orders', filter: { headers: [1] } }, 'BAD_USER_INPUT'],
      [{ queue: 'gq.orders', ratePerSecond: 0 }, 'BAD_USER_INPUT'],
      [{ queue: 'gq.orders', ratePerSecond: -1 }, 'BAD_USER_INPUT'],
      [{ queue: 'gq.missing' }, 'QUEUE_NOT_FOUND'],
      [{ queue: 'gq.orders', into: 'gq.missing' }, 'QUEUE_NOT_FOUND'],
    ];
    for (const [variables, code] of cases) {
      expect(
        onlyErrorCode(await svc.request(admin, REPLAY, variables)),
        JSON.stringify(variables),
      ).toBe(code);
    }
    const after = await svc.ok<{ replayJobs: unknown[] }>(
      admin,
      `{ replayJobs(queue: "gq.orders") { id } }`,
    );
    expect(after.replayJobs).toHaveLength(before.replayJobs.length);
  });
});

describe('archive and replay scopes', () => {
  it('reads an archive with receive rights on its queue only', async () => {
    const reader = await svc.token('archive-reader', 'read:gq.orders');
    const consumer = await svc.token('archive-consumer', 'receive:gq.orders');
    expect(onlyErrorCode(await svc.request(reader, ARCHIVED, { queue: 'gq.orders' }))).toBe(
      'FORBIDDEN',
    );
    const page = await svc.ok<ArchivedPage>(consumer, ARCHIVED, { queue: 'gq.orders' });
    expect(page.archivedMessages.messages).toHaveLength(6);
  });

  it('replays with receive rights on the source and send rights on the target', async () => {
    const consumer = await svc.token('replay-consumer', 'receive:gq.orders');
    const both = await svc.token('replay-both', 'receive:gq.orders,send:gq.backfill');
    expect(
      onlyErrorCode(
        await svc.request(consumer, REPLAY, {
          queue: 'gq.orders',
          into: 'gq.backfill',
          dryRun: true,
        }),
      ),
    ).toBe('FORBIDDEN');
    const sender = await svc.token('replay-sender', 'send:gq.backfill');
    expect(
      onlyErrorCode(
        await svc.request(sender, REPLAY, {
          queue: 'gq.orders',
          into: 'gq.backfill',
          dryRun: true,
        }),
      ),
    ).toBe('FORBIDDEN');
    const ok = await svc.ok<ReplayResult>(both, REPLAY, {
      queue: 'gq.orders',
      into: 'gq.backfill',
      dryRun: true,
    });
    expect(ok.replay.matched).toBe(6);
    // A job of a queue the token may not read is no job to it.
    const stranger = await svc.token('replay-stranger', 'receive:gq.other');
    const seen = await svc.ok<{ replayJob: unknown }>(stranger, JOB, { id: ok.replay.id });
    expect(seen.replayJob).toBeNull();
    expect(
      onlyErrorCode(await svc.request(stranger, `{ replayJobs(queue: "gq.orders") { id } }`)),
    ).toBe('FORBIDDEN');
  });
});
