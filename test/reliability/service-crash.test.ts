/**
 * Scenario 2: the service SIGKILLed under load. One instance killed and restarted on the
 * same port (clients retry through the outage); then three instances against one database
 * with one of them killed for good (clients fail over to the others). Sends that returned
 * were committed, so none may be lost; leases taken through the dead instance expire and
 * are redelivered, never while still valid.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { ServiceSet } from './load.ts';
import {
  Scenario,
  createScenarioQueue,
  freePort,
  remainingMessages,
  withTimeout,
} from './scenario.ts';

const VISIBILITY_TIMEOUT_SECONDS = 2;
const SENDS_PER_PRODUCER = 300;

let t: TestDatabase;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  for (const s of services) s.child.kill('SIGKILL');
  await Promise.all(services.map((s) => s.exited));
  await t.drop();
});

async function startService(env: Record<string, string> = {}): Promise<ServiceProcess> {
  const service = await startServiceProcess(t.url, { REAPER_INTERVAL_MS: '100', ...env });
  services.push(service);
  return service;
}

/** Two producers and three consumers on `urls`; returns the producers' exits. */
function startLoad(
  scenario: Scenario,
  urls: string[],
  queue: string,
): Promise<(number | string)[]> {
  for (let i = 0; i < 3; i++) {
    scenario.startConsumer(`consumer-${i}`, {
      urls,
      queue,
      visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
      max: 10,
      workMsMax: 100,
    });
  }
  const producers = [0, 1].map((i) =>
    scenario.startProducer(`producer-${i}`, {
      urls,
      queue,
      count: SENDS_PER_PRODUCER,
      ratePerSecond: 100,
    }),
  );
  return Promise.all(producers.map((p) => p.exited));
}

describe('reliability: the service killed under load', () => {
  it('loses nothing when the only instance is SIGKILLed twice and restarted', async () => {
    const queue = 'restart';
    const remaining = remainingMessages(t.pool, queue);
    const port = String(await freePort());
    let service = await startService({ PORT: port });
    const urls = [service.url];
    await createScenarioQueue(new ServiceSet(urls), queue, VISIBILITY_TIMEOUT_SECONDS);
    const scenario = await Scenario.create('2a-service-sigkill-restart');
    try {
      const producing = startLoad(scenario, urls, queue);
      const outages: number[] = [];
      for (const [kill, afterSends] of [150, 350].entries()) {
        await scenario.waitForSends(afterSends);
        service.child.kill('SIGKILL');
        expect(await service.exited).toBe('SIGKILL');
        const down = Date.now();
        // Same port: the clients only see connections refused until it is back.
        service = await startService({ PORT: port });
        outages.push(Date.now() - down);
        expect(service.url, `restart ${kill + 1}`).toBe(urls[0]);
      }
      expect(await withTimeout(producing, 45_000, 'the producers')).toEqual([0, 0]);
      await scenario.stopAll();
      await scenario.drain(urls, queue, remaining);

      const { verdict } = scenario.verdict({
        serviceKills: outages.length,
        outageMs: outages.join('+'),
      });
      expect(verdict.sent).toBe(2 * SENDS_PER_PRODUCER);
      // The kills hit the load: some requests failed while the service was down.
      expect(verdict.sendsFailed).toBeGreaterThan(0);
      expect(verdict.lost).toEqual([]);
      expect(verdict.inLeaseDuplicates).toEqual([]);
      expect(await remaining()).toBe(0);
    } finally {
      await scenario.dispose();
    }
  }, 90_000);

  it('loses nothing when one of three instances is SIGKILLed', async () => {
    const queue = 'three';
    const remaining = remainingMessages(t.pool, queue);
    const instances = await Promise.all([startService(), startService(), startService()]);
    const urls = instances.map((s) => s.url);
    await createScenarioQueue(new ServiceSet(urls), queue, VISIBILITY_TIMEOUT_SECONDS);
    const scenario = await Scenario.create('2b-three-instances-one-sigkill');
    try {
      const producing = startLoad(scenario, urls, queue);
      await scenario.waitForSends(200);
      const victim = instances[1];
      victim.child.kill('SIGKILL');
      expect(await victim.exited).toBe('SIGKILL');
      expect(await withTimeout(producing, 45_000, 'the producers')).toEqual([0, 0]);
      await scenario.stopAll();
      const survivors = urls.filter((u) => u !== victim.url);
      await scenario.drain(survivors, queue, remaining);

      const { verdict } = scenario.verdict({ instances: 3, instancesKilled: 1 });
      expect(verdict.sent).toBe(2 * SENDS_PER_PRODUCER);
      expect(verdict.lost).toEqual([]);
      expect(verdict.inLeaseDuplicates).toEqual([]);
      expect(await remaining()).toBe(0);
      for (const s of instances.filter((i) => i !== victim)) expect(s.child.exitCode).toBeNull();
    } finally {
      await scenario.dispose();
    }
  }, 90_000);
});
