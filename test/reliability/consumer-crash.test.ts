/**
 * Scenario 1: consumers SIGKILLed at random while they hold leases. Their leases expire and
 * the reaper puts the messages back; every send that returned must still be delivered, and
 * no message may reach a second consumer while the first one's lease is valid.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { ServiceSet } from './load.ts';
import {
  Scenario,
  abandonedLeases,
  createScenarioQueue,
  remainingMessages,
  withTimeout,
} from './scenario.ts';
import type { FixtureProcess } from './scenario.ts';

const QUEUE = 'ledger';
const VISIBILITY_TIMEOUT_SECONDS = 2;
const CONSUMERS = 4;
const MIN_KILLS = 5;
/** Each replacement costs a process start; more kills only slow a loaded machine down. */
const MAX_KILLS = 8;
const KILL_EVERY_MS = 1_000;
const PRODUCERS = 2;
const SENDS_PER_PRODUCER = 300;

let t: TestDatabase;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  service?.child.kill('SIGKILL');
  await service?.exited;
  await t.drop();
});

describe('reliability: consumers killed while holding leases', () => {
  it('loses nothing and never delivers a message twice within a lease', async () => {
    service = await startServiceProcess(t.url, { REAPER_INTERVAL_MS: '100' });
    const urls = [service.url];
    await createScenarioQueue(new ServiceSet(urls), QUEUE, VISIBILITY_TIMEOUT_SECONDS);
    const remaining = remainingMessages(t.pool, QUEUE);
    const scenario = await Scenario.create('1-consumers-sigkill');
    try {
      const consumerSpec = {
        urls,
        queue: QUEUE,
        visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
        max: 5,
        // Long enough that a kill usually finds leases held.
        workMsMax: 400,
      };
      let consumers: FixtureProcess[] = [];
      let spawned = 0;
      for (; spawned < CONSUMERS; spawned++) {
        consumers.push(scenario.startConsumer(`consumer-${spawned}`, consumerSpec));
      }
      const producers = Array.from({ length: PRODUCERS }, (_, i) =>
        scenario.startProducer(`producer-${i}`, {
          urls,
          queue: QUEUE,
          count: SENDS_PER_PRODUCER,
          ratePerSecond: 60,
        }),
      );
      const producing = Promise.all(producers.map((p) => p.exited));
      let producersDone = false;
      void producing.then(() => (producersDone = true));

      // Kill a random consumer every KILL_EVERY_MS while the load runs (MIN_KILLS to
      // MAX_KILLS times), and start a fresh one in its place.
      let kills = 0;
      const killDeadline = Date.now() + 40_000;
      while (
        (!producersDone || kills < MIN_KILLS) &&
        kills < MAX_KILLS &&
        Date.now() < killDeadline
      ) {
        await sleep(KILL_EVERY_MS);
        const victim = consumers[Math.floor(Math.random() * consumers.length)]!;
        victim.child.kill('SIGKILL');
        expect(await victim.exited).toBe('SIGKILL');
        kills++;
        consumers = consumers.filter((c) => c !== victim);
        consumers.push(scenario.startConsumer(`consumer-${spawned++}`, consumerSpec));
      }
      const codes = await withTimeout(producing, 30_000, 'the producers');
      expect(codes).toEqual(producers.map(() => 0));
      await scenario.stopAll();
      await scenario.drain(urls, QUEUE, remaining);

      const { abandoned, redelivered } = abandonedLeases(scenario.entries());
      const { verdict } = scenario.verdict({
        consumerKills: kills,
        leasesAbandoned: abandoned,
        abandonedRedelivered: redelivered,
      });
      expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
      // The kills did hit consumers holding leases, and those messages came back.
      expect(abandoned).toBeGreaterThan(0);
      expect(redelivered).toBeGreaterThan(0);
      expect(verdict.sent).toBe(PRODUCERS * SENDS_PER_PRODUCER);
      expect(verdict.lost).toEqual([]);
      expect(verdict.inLeaseDuplicates).toEqual([]);
      expect(await remaining()).toBe(0);
    } finally {
      await scenario.dispose();
    }
  }, 90_000);
});
