/**
 * Scenario 5: the instance that leads the reaper SIGKILLed under load. Its leader lock is a
 * session advisory lock, released when its connection dies; the standby instance must take
 * over within 5 s (at its default 1 s interval) and reap leases that expire after the
 * leader is gone, so their messages are delivered again and acked.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { ServiceSet, sendRecordedBatch, takeLeases } from './load.ts';
import { Scenario, createScenarioQueue, remainingMessages, withTimeout } from './scenario.ts';

const QUEUE = 'failover';
/** Where the leases that outlive the leader are taken, away from the competing consumers. */
const HELD_QUEUE = 'failover-held';
const VISIBILITY_TIMEOUT_SECONDS = 2;
const SENDS = 600;
const HELD_LEASES = 30;
const TAKEOVER_LIMIT_MS = 5_000;

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

/** The first log line of `service` with message `msg` written at or after `since`. */
function logLine(
  service: ServiceProcess,
  msg: string,
  since = 0,
): Record<string, unknown> | undefined {
  return service.logs.find((l) => l.msg === msg && typeof l.time === 'number' && l.time >= since);
}

async function waitForLog(
  service: ServiceProcess,
  msg: string,
  since: number,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLine(service, msg, since);
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`no "${msg}" log within ${timeoutMs} ms`);
    await sleep(20);
  }
}

describe('reliability: the reaper leader killed', () => {
  it('hands the reaper to a standby within 5 s, which still reaps expired leases', async () => {
    // Default REAPER_INTERVAL_MS (1 s): the takeover time is the one users get.
    services.push(...(await Promise.all([startServiceProcess(t.url), startServiceProcess(t.url)])));
    const deadline = Date.now() + 10_000;
    while (!services.some((s) => logLine(s, 'reaper leadership taken'))) {
      if (Date.now() > deadline) throw new Error('no instance took the reaper lead');
      await sleep(20);
    }
    const leader = services.find((s) => logLine(s, 'reaper leadership taken'))!;
    const standby = services.find((s) => s !== leader)!;
    expect(logLine(standby, 'reaper leadership taken')).toBeUndefined();

    const urls = services.map((s) => s.url);
    await createScenarioQueue(new ServiceSet(urls), QUEUE, VISIBILITY_TIMEOUT_SECONDS);
    await createScenarioQueue(new ServiceSet(urls), HELD_QUEUE, VISIBILITY_TIMEOUT_SECONDS);
    const remaining = remainingMessages(t.pool, QUEUE);
    const remainingHeld = remainingMessages(t.pool, HELD_QUEUE);
    const scenario = await Scenario.create('5-reaper-leader-sigkill');
    try {
      for (let i = 0; i < 2; i++) {
        scenario.startConsumer(`consumer-${i}`, {
          urls,
          queue: QUEUE,
          visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
        });
      }
      const producer = scenario.startProducer('producer-0', {
        urls,
        queue: QUEUE,
        count: SENDS,
        ratePerSecond: 100,
        concurrency: 4,
      });
      await scenario.waitForSends(150);

      // A consumer takes leases through the standby and dies with them; they expire 2 s
      // after the leader is gone, so only the new leader can put them back.
      const holder = scenario.writer('holder');
      const viaStandby = new ServiceSet([standby.url]);
      const sentHeld = await sendRecordedBatch({
        services: viaStandby,
        ledger: holder,
        queue: HELD_QUEUE,
        producer: 'holder',
        count: HELD_LEASES,
      });
      const held = await takeLeases({
        services: viaStandby,
        ledger: holder,
        queue: HELD_QUEUE,
        consumer: 'holder',
        max: HELD_LEASES,
        visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
      });
      holder.close();
      leader.child.kill('SIGKILL');
      const killedAt = Date.now();
      expect(await leader.exited).toBe('SIGKILL');

      const taken = await waitForLog(standby, 'reaper leadership taken', killedAt, 10_000);
      const takeoverMs = (taken.time as number) - killedAt;
      const reaped = await waitForLog(standby, 'expired leases requeued', killedAt, 15_000);

      expect(await withTimeout(producer.exited, 45_000, 'the producer')).toBe(0);
      await scenario.stopAll();
      await scenario.drain([standby.url], QUEUE, remaining);
      await scenario.drain([standby.url], HELD_QUEUE, remainingHeld);

      const { verdict } = scenario.verdict({
        takeoverMs,
        heldLeases: held.length,
        firstReapMs: (reaped.time as number) - killedAt,
      });
      expect(held.sort()).toEqual(sentHeld.sort());
      expect(takeoverMs).toBeLessThan(TAKEOVER_LIMIT_MS);
      expect(verdict.sent).toBe(SENDS + HELD_LEASES);
      expect(verdict.lost).toEqual([]);
      expect(verdict.inLeaseDuplicates).toEqual([]);
      // The held messages were never acked by their holder: they are gone from the queue
      // only because the new leader reaped them and another consumer acked them.
      const entries = scenario.entries();
      for (const id of held) {
        const ackedBy = entries.filter((e) => e.t === 'ack' && e.ok && e.id === id);
        expect(ackedBy.map((e) => e.t === 'ack' && e.consumer)).not.toContain('holder');
        expect(ackedBy.length, `message ${id} acked after the reap`).toBe(1);
      }
      expect(await remaining()).toBe(0);
      expect(await remainingHeld()).toBe(0);
    } finally {
      await scenario.dispose();
    }
  }, 90_000);
});
