/**
 * Scenario 4: a full PostgreSQL restart under load. A throwaway embedded PostgreSQL cluster
 * (its own data folder and port) is stopped and started again while producers and consumers
 * run. The service must ride it out: requests during the outage fail at once with the
 * retryable UNAVAILABLE (no hang, no crash, /healthz up and /readyz down), and afterwards it
 * serves again on its own, LISTEN included, with nothing lost.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts';
import type { EmbeddedPostgresServer } from '../../src/db/embedded-postgres.ts';
import { createPool } from '../../src/db/pool.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';
import { pollUntil } from '../helpers/notifications.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { ServiceSet } from './load.ts';
import {
  Scenario,
  createScenarioQueue,
  failureCodes,
  formatCodes,
  freePort,
  remainingMessages,
  wakeLatencyMs,
  withTimeout,
} from './scenario.ts';

const QUEUE = 'restart';
const PROBE_QUEUE = 'probe';
const VISIBILITY_TIMEOUT_SECONDS = 2;
const SENDS_PER_PRODUCER = 400;
/** How long PostgreSQL stays down. */
const OUTAGE_MS = 3_000;
/** A request during the outage must be answered within this: failing fast, not hanging. */
const FAIL_FAST_MS = 2_000;

let dir: string | undefined;
let port: number;
let postgres: EmbeddedPostgresServer | undefined;
let service: ServiceProcess | undefined;

afterAll(async () => {
  service?.child.kill('SIGKILL');
  await service?.exited;
  await postgres?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/**
 * The throwaway cluster, started inside the test rather than in beforeAll: a setup that
 * fails then fails the test, where a failed beforeAll would report it as skipped.
 */
async function setUp(): Promise<void> {
  dir = await mkdtemp(path.join(os.tmpdir(), 'holdline-restart-pg-'));
  // mkdtemp makes it 0700; as root PostgreSQL runs as the postgres user, who must enter it.
  await chmod(dir, 0o755);
  port = await freePort();
  postgres = await startPostgres();
}

function startPostgres(): Promise<EmbeddedPostgresServer> {
  // persistent: the data folder outlives stop(), so the same cluster starts again.
  return startEmbeddedPostgres({ dataDir: path.join(dir!, 'data'), port, persistent: true });
}

/** Each operation a client may try during the outage, with the answer it got and when. */
async function probeDuringOutage(
  url: string,
): Promise<{ op: string; ms: number; code?: string }[]> {
  const operations: [string, string, Record<string, unknown>][] = [
    ['send', `mutation($q: String!) { send(queue: $q, message: { payload: 1 }) { id } }`, {}],
    ['receive', `mutation($q: String!) { receive(queue: $q, waitSeconds: 1) { receipt } }`, {}],
    [
      'ack',
      `mutation($r: String!) { ack(receipt: $r) }`,
      { r: '1.00000000-0000-4000-8000-000000000000' },
    ],
    ['stats', `query($q: String!) { queue(name: $q) { stats { ready } } }`, {}],
  ];
  const answers = [];
  for (const [op, query, variables] of operations) {
    const started = Date.now();
    const answer = await graphqlRequest(url, query, { q: QUEUE, ...variables });
    answers.push({ op, ms: Date.now() - started, code: answer.errors?.[0]?.extensions?.code });
  }
  return answers;
}

async function status(url: string, route: string): Promise<number> {
  return (await fetch(`${url}${route}`, { signal: AbortSignal.timeout(FAIL_FAST_MS) })).status;
}

describe('reliability: a full PostgreSQL restart', () => {
  it('fails requests fast with UNAVAILABLE during the outage and carries on after it', async () => {
    await setUp();
    const url = postgres!.connectionString;
    service = await startServiceProcess(url, { REAPER_INTERVAL_MS: '100' });
    const urls = [service.url];
    const services = new ServiceSet(urls);
    await createScenarioQueue(services, QUEUE, VISIBILITY_TIMEOUT_SECONDS);
    await createScenarioQueue(services, PROBE_QUEUE, 30);
    // The test's own sessions ride the restart too: a pool (reconnects by itself) and, for
    // the wake-up probe, a client made afresh after it.
    const pool = createPool({ connectionString: url, max: 2 });
    const remaining = remainingMessages(pool, QUEUE);
    const scenario = await Scenario.create('4-postgres-restart');
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
      await scenario.waitForSends(150);

      const stopping = Date.now();
      await postgres!.stop();
      postgres = undefined;
      const down = Date.now();
      const probes = await probeDuringOutage(service.url);
      const health = await status(service.url, '/healthz');
      const readiness = await status(service.url, '/readyz');
      await sleep(Math.max(0, down + OUTAGE_MS - Date.now()));
      postgres = await startPostgres();
      const up = Date.now();
      await pollUntil(
        '/readyz to answer 200',
        async () => (await status(service!.url, '/readyz')) === 200,
        30_000,
      );
      const ready = Date.now();

      const codes = await withTimeout(
        Promise.all(producers.map((p) => p.exited)),
        60_000,
        'the producers',
      );
      await scenario.stopAll();
      await scenario.drain(urls, QUEUE, remaining);

      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      const wakes: number[] = [];
      try {
        for (let i = 0; i < 3; i++)
          wakes.push(await wakeLatencyMs(service.url, admin, PROBE_QUEUE));
      } finally {
        await admin.end();
      }

      const failures = failureCodes(scenario.entries());
      const { verdict } = scenario.verdict({
        stopMs: down - stopping,
        outageMs: up - stopping,
        readyAfterStartMs: ready - up,
        slowestOutageAnswerMs: Math.max(...probes.map((p) => p.ms)),
        failures: formatCodes(failures),
        wakeMsAfter: wakes.map((ms) => ms.toFixed(0)).join('/'),
      });

      expect(probes).toEqual(
        probes.map((p) => ({ op: p.op, ms: expect.any(Number) as number, code: 'UNAVAILABLE' })),
      );
      for (const p of probes) expect(p.ms, p.op).toBeLessThan(FAIL_FAST_MS);
      expect({ health, readiness }).toEqual({ health: 200, readiness: 503 });
      expect(service.child.exitCode).toBeNull();
      expect(codes).toEqual([0, 0]);
      expect(verdict.sent).toBe(2 * SENDS_PER_PRODUCER);
      expect(verdict.sendsFailed).toBeGreaterThan(0);
      expect(verdict.lost).toEqual([]);
      expect(verdict.inLeaseDuplicates).toEqual([]);
      expect(await remaining()).toBe(0);
      // Clients saw only the retryable code: no hang (TIMEOUT), no crash (NETWORK), no
      // masked internal error.
      expect([...failures.keys()].filter((c) => c !== 'UNAVAILABLE' && c !== 'LEASE_LOST')).toEqual(
        [],
      );
      // LISTEN is back: another session's commit wakes a long poll at once (the safety-net
      // poll is 1 s).
      expect([...wakes].sort((a, b) => a - b)[1]).toBeLessThan(250);
    } finally {
      await scenario.dispose();
      await pool.end();
    }
  }, 120_000);
});
