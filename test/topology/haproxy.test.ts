/**
 * Three stateless service instances behind HAProxy (Debian's haproxy, started here),
 * round-robin with health checks: producers and long-polling consumers (child processes),
 * an SSE subscriber and a WebSocket subscriber of `deliveries` all reach the service only
 * through HAProxy's one address. One instance is SIGKILLed under that load and started again
 * on its port. Sends that returned were committed, so none may be lost; streams cut by the
 * kill subscribe again through HAProxy; leases held through the dead instance expire and are
 * delivered again, never while still valid (the ledger of test/reliability judges both).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';
import { startHaProxy } from '../helpers/haproxy.ts';
import type { HaProxy } from '../helpers/haproxy.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { sseTransport, wsTransport } from '../graphql/transports.ts';
import type { Transport } from '../graphql/transports.ts';
import type { LedgerWriter } from '../reliability/ledger.ts';
import { ServiceSet } from '../reliability/load.ts';
import {
  Scenario,
  createScenarioQueue,
  freePort,
  remainingMessages,
  withTimeout,
} from '../reliability/scenario.ts';

const VISIBILITY_TIMEOUT_SECONDS = 2;
const SENDS_PER_PRODUCER = 300;
const QUEUE = 'balanced';

let t: TestDatabase;
let proxy: HaProxy | undefined;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  for (const s of services) s.child.kill('SIGKILL');
  await Promise.all(services.map((s) => s.exited));
  await proxy?.stop();
  await t.drop();
});

async function startService(port: number): Promise<ServiceProcess> {
  const service = await startServiceProcess(t.url, {
    PORT: String(port),
    REAPER_INTERVAL_MS: '100',
  });
  services.push(service);
  return service;
}

const DELIVERIES = `subscription ($queue: String!, $prefetch: Int, $visibilityTimeout: Int) {
  deliveries(queue: $queue, prefetch: $prefetch, visibilityTimeout: $visibilityTimeout) {
    receipt leaseExpiresAt message { id attempts }
  }
}`;

interface DeliveryJson {
  receipt: string;
  leaseExpiresAt: string;
  message: { id: string; attempts: number };
}

/**
 * A `deliveries` subscriber through `transport` that writes each delivery to the ledger and
 * acks it with its own `ack` request through the same address; when its stream ends or
 * fails (its instance died), it subscribes again. Runs until `stopped()`.
 */
async function runSubscriber(options: {
  transport: Transport;
  url: string;
  consumer: string;
  ledger: LedgerWriter;
  stopped: () => boolean;
  subscriptions: { count: number };
}): Promise<void> {
  const { transport, url, consumer, ledger, stopped } = options;
  while (!stopped()) {
    const subscription = await transport
      .subscribe<{ deliveries: DeliveryJson }>(DELIVERIES, {
        queue: QUEUE,
        prefetch: 4,
        visibilityTimeout: VISIBILITY_TIMEOUT_SECONDS,
      })
      .catch(() => undefined);
    if (subscription === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    options.subscriptions.count++;
    try {
      while (!stopped()) {
        const result = await subscription.next(500).catch(() => undefined);
        if (result === undefined) {
          if (subscription.ended) break;
          continue;
        }
        const delivery = result.data?.deliveries;
        if (delivery === undefined) break;
        const { receipt, message } = delivery;
        ledger.write({
          t: 'deliver',
          id: message.id,
          consumer,
          receipt,
          leaseExpiresAt: Date.parse(delivery.leaseExpiresAt),
          visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
          attempts: message.attempts,
          at: Date.now(),
        });
        const acked = await graphqlRequest<{ ack: boolean }>(
          url,
          'mutation ($r: String!) { ack(receipt: $r) }',
          { r: receipt },
        ).catch(() => undefined);
        const code = acked?.errors?.[0]?.extensions?.code;
        ledger.write({
          t: 'ack',
          id: message.id,
          consumer,
          receipt,
          ok: acked?.data?.ack === true,
          ...(acked === undefined ? { code: 'NETWORK' } : typeof code === 'string' ? { code } : {}),
          at: Date.now(),
        });
      }
    } finally {
      await subscription.close().catch(() => undefined);
    }
  }
}

describe('three service instances behind HAProxy', () => {
  it('loses nothing and duplicates no lease when one instance is SIGKILLed and restarted', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    const instances = await Promise.all(ports.map((port) => startService(port)));
    proxy = await startHaProxy({ port: await freePort(), backendPorts: ports });
    const urls = [proxy.url];
    const remaining = remainingMessages(t.pool, QUEUE);
    await createScenarioQueue(new ServiceSet(urls), QUEUE, VISIBILITY_TIMEOUT_SECONDS);
    const scenario = await Scenario.create('topology-haproxy-kill');
    let stopped = false;
    const sse = { count: 0 };
    const ws = { count: 0 };
    const sseLedger = scenario.writer('sse-subscriber');
    const wsLedger = scenario.writer('ws-subscriber');
    const subscribers = [
      runSubscriber({
        transport: sseTransport(proxy.url),
        url: proxy.url,
        consumer: 'sse-subscriber',
        ledger: sseLedger,
        stopped: () => stopped,
        subscriptions: sse,
      }),
      runSubscriber({
        transport: wsTransport(proxy.url),
        url: proxy.url,
        consumer: 'ws-subscriber',
        ledger: wsLedger,
        stopped: () => stopped,
        subscriptions: ws,
      }),
    ];
    try {
      for (let i = 0; i < 2; i++) {
        scenario.startConsumer(`consumer-${i}`, {
          urls,
          queue: QUEUE,
          visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
          max: 10,
          workMsMax: 50,
        });
      }
      const producing = Promise.all(
        [0, 1].map(
          (i) =>
            scenario.startProducer(`producer-${i}`, {
              urls,
              queue: QUEUE,
              count: SENDS_PER_PRODUCER,
              ratePerSecond: 100,
            }).exited,
        ),
      );
      await scenario.waitForSends(200);
      const victim = instances[1]!;
      victim.child.kill('SIGKILL');
      expect(await victim.exited).toBe('SIGKILL');
      // Back on its port: HAProxy's health check takes it in again.
      const restarted = await startService(ports[1]);
      expect(restarted.url).toBe(victim.url);
      expect(await withTimeout(producing, 45_000, 'the producers')).toEqual([0, 0]);
      await scenario.stopAll();
      stopped = true;
      await withTimeout(Promise.all(subscribers), 10_000, 'the subscribers');
      sseLedger.close();
      wsLedger.close();
      await scenario.drain(urls, QUEUE, remaining);

      const { verdict } = scenario.verdict({ instances: 3, instancesKilled: 1 });
      expect(verdict.sent).toBe(2 * SENDS_PER_PRODUCER);
      expect(verdict.lost).toEqual([]);
      expect(verdict.inLeaseDuplicates).toEqual([]);
      expect(await remaining()).toBe(0);
      // Both kinds of stream carried deliveries, through HAProxy.
      const consumers = new Set(
        scenario.entries().flatMap((e) => (e.t === 'deliver' ? [e.consumer] : [])),
      );
      expect(consumers).toContain('sse-subscriber');
      expect(consumers).toContain('ws-subscriber');
      // The surviving instances never went down.
      for (const s of [instances[0]!, instances[2]!]) expect(s.child.exitCode).toBeNull();
    } finally {
      stopped = true;
      await scenario.dispose();
    }
  }, 90_000);
});
