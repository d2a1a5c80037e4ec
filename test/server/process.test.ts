import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';
import { CLI_NODE_ARGS, startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';

const SEND = `mutation($q: String!, $p: JSON!) { send(queue: $q, message: { payload: $p }) { id } }`;
const RECEIVE = `mutation($q: String!, $max: Int, $vt: Int, $wait: Int) {
  receive(queue: $q, max: $max, visibilityTimeout: $vt, waitSeconds: $wait) { receipt message { id } }
}`;
const ACK_BATCH = `mutation($r: [String!]!) { ackBatch(receipts: $r) }`;

type Deliveries = { receive: { receipt: string; message: { id: string } }[] };

let t: TestDatabase;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  for (const service of running) service.child.kill('SIGKILL');
  await Promise.all(running.map((s) => s.exited));
  await t.drop();
});

async function start(): Promise<ServiceProcess> {
  const service = await startServiceProcess(t.url, { REAPER_INTERVAL_MS: '100' });
  running.push(service);
  return service;
}

describe('the holdline serve process', () => {
  it('delivers every committed message after being SIGKILLed under load and restarted', async () => {
    let service = await start();
    const created = await graphqlRequest(
      service.url,
      `mutation { createQueue(name: "crash") { name } }`,
    );
    expect(created.errors).toBeUndefined();

    const committed = new Set<string>();
    const acked = new Set<string>();
    // Delivered, with an ack whose answer died with the process: it may have committed.
    const ackInDoubt = new Set<string>();
    let killed = false;
    // Acks a batch; its ids count as done only when every receipt in it was acknowledged.
    const drain = async (deliveries: Deliveries['receive']): Promise<void> => {
      if (deliveries.length === 0) return;
      let res: { data?: { ackBatch: number } };
      try {
        res = await graphqlRequest<{ ackBatch: number }>(service.url, ACK_BATCH, {
          r: deliveries.map((d) => d.receipt),
        });
      } catch (error) {
        for (const d of deliveries) ackInDoubt.add(d.message.id);
        throw error;
      }
      if (res.data?.ackBatch === deliveries.length)
        for (const d of deliveries) acked.add(d.message.id);
    };
    // A message is accounted for when its ack was confirmed, or when its ack was in doubt and
    // it is gone from the table (only an ack deletes a message of a queue nobody purges).
    const unaccounted = async (): Promise<string[]> => {
      const open = [...committed].filter((id) => !acked.has(id));
      const doubtful = open.filter((id) => ackInDoubt.has(id));
      const { rows } = await t.pool.query<{ id: string }>(
        'SELECT id::text FROM holdline.messages WHERE id = ANY($1::bigint[])',
        [doubtful],
      );
      const present = new Set(rows.map((r) => r.id));
      return open.filter((id) => !ackInDoubt.has(id) || present.has(id));
    };

    const producer = async (worker: number): Promise<void> => {
      for (let i = 0; !killed && i < 2_000; i++) {
        try {
          const res = await graphqlRequest<{ send: { id: string } }>(service.url, SEND, {
            q: 'crash',
            p: { worker, i },
          });
          if (res.data?.send.id !== undefined) committed.add(res.data.send.id);
        } catch {
          return; // the connection died with the process: this send's outcome is unknown
        }
      }
    };
    const consumer = async (): Promise<void> => {
      while (!killed) {
        try {
          const res = await graphqlRequest<Deliveries>(service.url, RECEIVE, {
            q: 'crash',
            max: 20,
            vt: 2,
            wait: 1,
          });
          await drain(res.data?.receive ?? []);
        } catch {
          return;
        }
      }
    };
    const load = Promise.all([producer(0), producer(1), producer(2), producer(3), consumer()]);
    // Kill once a few hundred sends have been acknowledged, with sends and leases in flight.
    for (let spins = 0; committed.size < 300 && spins < 600; spins++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    killed = true;
    service.child.kill('SIGKILL');
    expect(await service.exited).toBe('SIGKILL');
    await load;
    expect(committed.size).toBeGreaterThanOrEqual(300);

    service = await start();
    // Leases the killed consumer held expire after 2 s and are reaped; drain until all arrive.
    const deadline = Date.now() + 60_000;
    while ((await unaccounted()).length > 0 && Date.now() < deadline) {
      const res = await graphqlRequest<Deliveries>(service.url, RECEIVE, {
        q: 'crash',
        max: 100,
        vt: 30,
        wait: 1,
      });
      await drain(res.data?.receive ?? []);
    }
    expect(await unaccounted()).toEqual([]);
    // Only the batch being acked at the kill can be in doubt.
    expect(ackInDoubt.size).toBeLessThanOrEqual(20);
  }, 120_000);

  it('exits 0 within 10 s of SIGTERM, answering the requests in flight', async () => {
    const service = await start();
    await graphqlRequest(service.url, `mutation { createQueue(name: "term") { name } }`);
    const longPoll = graphqlRequest<Deliveries>(service.url, RECEIVE, {
      q: 'term',
      max: 1,
      wait: 20,
    });
    // The long poll is registered as a waiting consumer once it is in flight.
    for (let i = 0; i < 100; i++) {
      const { rows } = await t.pool.query(
        'SELECT count(*)::int AS n FROM holdline.waiting_consumers',
      );
      if ((rows[0] as { n: number }).n > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const signalled = Date.now();
    service.child.kill('SIGTERM');
    const answer = await longPoll;
    expect(answer.status).toBe(200);
    expect(answer.data?.receive).toEqual([]);
    expect(await service.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(10_000);
  }, 60_000);

  it('exits 1 within 5 s, with one line naming the address and PORT, when its port is taken', async () => {
    const service = await start();
    const port = new URL(service.url).port;
    const started = Date.now();
    const second = spawn(process.execPath, [...CLI_NODE_ARGS, 'serve'], {
      env: { ...process.env, DATABASE_URL: t.url, HOST: '127.0.0.1', PORT: port },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    second.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise((resolve) =>
      second.once('exit', (c, signal) => resolve(c ?? signal)),
    );
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
    const lines = stderr.trim().split('\n');
    expect(lines).toEqual([expect.stringContaining(`127.0.0.1:${port}`)]);
    expect(lines[0]).toContain('PORT');
    expect(lines[0]).toContain('EADDRINUSE');
  }, 30_000);
});
