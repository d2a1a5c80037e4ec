/**
 * Scenario 3: every connection of the service cut from the PostgreSQL side
 * (pg_terminate_backend) in the middle of the load, three times. The service must recover
 * on its own, without a restart: the query pool reconnects, the LISTEN connection comes
 * back (a long poll is woken by another session's commit again), the reaper retakes its
 * lock, requests cut mid-flight fail with the retryable UNAVAILABLE, and the ledger stays
 * clean.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { pollUntil } from '../helpers/notifications.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { ServiceSet } from './load.ts';
import {
  Scenario,
  createScenarioQueue,
  failureCodes,
  formatCodes,
  listenerPid,
  reaperLockHeld,
  remainingMessages,
  wakeLatencyMs,
  withTimeout,
} from './scenario.ts';

const QUEUE = 'cut';
const PROBE_QUEUE = 'probe';
const VISIBILITY_TIMEOUT_SECONDS = 2;
const SENDS_PER_PRODUCER = 300;
const CUTS = 3;
/** Median wake-up after a commit in another session: a NOTIFY, on one machine. */
const WAKE_MEDIAN_LIMIT_MS = 100;
/** The safety-net poll of this service: a wake-up sooner than this came from NOTIFY. */
const POLL_INTERVAL_MS = 10_000;

let t: TestDatabase;
let admin: pg.Client;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  t = await createTestDatabase();
  admin = await t.connect();
});
afterAll(async () => {
  service?.child.kill('SIGKILL');
  await service?.exited;
  await admin.end();
  await t.drop();
});

/** Terminates every other session of the test database; returns how many. */
async function cutEveryConnection(): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n
     FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
  );
  return rows[0]!.n;
}

describe('reliability: every service connection cut from the PostgreSQL side', () => {
  it('reconnects on its own, LISTEN included, and loses nothing', async () => {
    service = await startServiceProcess(t.url, {
      REAPER_INTERVAL_MS: '100',
      POLL_INTERVAL_MS: String(POLL_INTERVAL_MS),
    });
    const urls = [service.url];
    const services = new ServiceSet(urls);
    await createScenarioQueue(services, QUEUE, VISIBILITY_TIMEOUT_SECONDS);
    await createScenarioQueue(services, PROBE_QUEUE, 30);
    const before = await wakeLatencyMs(service.url, admin, PROBE_QUEUE);
    const listenerBefore = await listenerPid(admin);
    const remaining = remainingMessages(t.pool, QUEUE);
    const scenario = await Scenario.create('3-connections-terminated');
    try {
      for (let i = 0; i < 3; i++) {
        scenario.startConsumer(`consumer-${i}`, {
          urls,
          queue: QUEUE,
          visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
        });
      }
      const producers = [0, 1].map((i) =>
        scenario.startProducer(`producer-${i}`, {
          urls,
          queue: QUEUE,
          count: SENDS_PER_PRODUCER,
          ratePerSecond: 100,
        }),
      );
      const terminated: number[] = [];
      for (let cut = 1; cut <= CUTS; cut++) {
        await scenario.waitForSends(cut * 150);
        terminated.push(await cutEveryConnection());
        await sleep(300);
      }
      const codes = await withTimeout(
        Promise.all(producers.map((p) => p.exited)),
        45_000,
        'the producers',
      );
      expect(codes).toEqual([0, 0]);
      await scenario.stopAll();
      await scenario.drain(urls, QUEUE, remaining);

      // Back without a restart: a new LISTEN session, the reaper's lock retaken, and a
      // commit in another session wakes a long poll at once (not at the 10 s poll).
      expect(service.child.exitCode).toBeNull();
      await pollUntil('a new listener connection', async () => {
        const pid = await listenerPid(admin);
        return pid !== undefined && pid !== listenerBefore;
      });
      await pollUntil('the reaper to retake its lock', () => reaperLockHeld(admin));
      const after = [];
      for (let i = 0; i < 3; i++) after.push(await wakeLatencyMs(service.url, admin, PROBE_QUEUE));

      const failures = failureCodes(scenario.entries());
      const { verdict } = scenario.verdict({
        cuts: CUTS,
        backendsTerminated: terminated.join('+'),
        failures: formatCodes(failures),
        wakeMsBefore: before.toFixed(0),
        wakeMsAfter: after.map((ms) => ms.toFixed(0)).join('/'),
      });
      expect(terminated.every((n) => n >= 3)).toBe(true);
      expect(verdict.sent).toBe(2 * SENDS_PER_PRODUCER);
      expect(verdict.lost).toEqual([]);
      expect(verdict.inLeaseDuplicates).toEqual([]);
      expect(await remaining()).toBe(0);
      // A request cut mid-statement is reported as retryable, never as an internal error.
      expect([...failures.keys()].filter((c) => c !== 'UNAVAILABLE' && c !== 'LEASE_LOST')).toEqual(
        [],
      );
      const sorted = [...after].sort((a, b) => a - b);
      expect(sorted[1]).toBeLessThan(WAKE_MEDIAN_LIMIT_MS);
      expect(sorted[2]).toBeLessThan(POLL_INTERVAL_MS / 10);
    } finally {
      await scenario.dispose();
    }
  }, 90_000);
});
