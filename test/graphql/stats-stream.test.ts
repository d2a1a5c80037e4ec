import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedQueueStats, streamQueueStats } from '../../src/graphql/stats-stream.ts';
import type { QueueStats } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startService } from './harness.ts';
import type { GraphQLService } from './harness.ts';

let t: TestDatabase;
let api: GraphQLService;
beforeAll(async () => {
  t = await createTestDatabase();
  api = await startService(t);
});
afterAll(async () => {
  await api.stop();
  await t.drop();
});

describe('streamQueueStats', () => {
  it('reports the age of the oldest ready message by whole seconds only when watched', async () => {
    await api.engine.createQueue('st-age');
    await api.engine.send('st-age', { payload: 1 });
    const controller = new AbortController();
    const options = {
      engine: api.engine,
      stats: new SharedQueueStats(api.engine, 10),
      logger: pino({ level: 'silent' }),
      queue: 'st-age',
      intervalMs: 20,
    };
    const watching = streamQueueStats({ ...options, watchAge: true }, controller.signal);
    const blind = streamQueueStats({ ...options, watchAge: false }, controller.signal);
    const blindSeen: QueueStats[] = [];
    const collecting = (async () => {
      for await (const stats of blind) blindSeen.push(stats);
    })();
    try {
      const first = (await watching.next()).value as QueueStats;
      // The next update of the watching stream is the age crossing a whole second: nothing
      // else changes.
      const second = (await watching.next()).value as QueueStats;
      expect(second).toMatchObject({ ready: 1, total: 1 });
      expect(Math.floor(second.oldestReadyAgeSeconds!)).toBeGreaterThan(
        Math.floor(first.oldestReadyAgeSeconds!),
      );
      // Polling as often, the stream that does not watch the age saw one value only.
      expect(blindSeen).toHaveLength(1);
    } finally {
      controller.abort();
      await watching.return();
      await collecting;
    }
  });

  it('lets twenty subscribers of a queue share one look a tick', async () => {
    await api.engine.createQueue('st-shared');
    await api.engine.send('st-shared', { payload: 1 });
    let looks = 0;
    const counting = {
      queueStats: (queue: string) => {
        looks += 1;
        return api.engine.queueStats(queue);
      },
    };
    const controller = new AbortController();
    const options = {
      engine: api.engine,
      stats: new SharedQueueStats(counting, 100),
      logger: pino({ level: 'silent' }),
      queue: 'st-shared',
      intervalMs: 20,
      watchAge: false,
    };
    const streams = Array.from({ length: 20 }, () => streamQueueStats(options, controller.signal));
    try {
      const firsts = await Promise.all(streams.map(async (s) => (await s.next()).value));
      expect(firsts.every((stats) => stats?.ready === 1)).toBe(true);
      const startedLooks = looks;
      const started = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const elapsed = Date.now() - started;
      // Twenty streams looking every 20 ms would be ~500 looks; shared, one per 100 ms.
      expect(looks - startedLooks).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
      // And a change still reaches every subscriber.
      await api.engine.send('st-shared', { payload: 2 });
      const nexts = await Promise.all(streams.map(async (s) => (await s.next()).value));
      expect(nexts.every((stats) => stats?.ready === 2)).toBe(true);
    } finally {
      controller.abort();
      await Promise.all(streams.map((s) => s.return()));
    }
  });
});
