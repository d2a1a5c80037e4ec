import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamQueueStats } from '../../src/graphql/stats-stream.ts';
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
});
