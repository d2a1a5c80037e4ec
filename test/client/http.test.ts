import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HoldlineError, createClient } from '../../src/index.ts';
import type { HoldlineClient } from '../../src/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { defineClientSuite } from './client-suite.ts';
import type { SuiteTarget } from './support.ts';
import { defineWorkerSuite } from './worker-suite.ts';

let t: TestDatabase;
let service: ServiceProcess;
let client: HoldlineClient;

beforeAll(async () => {
  t = await createTestDatabase();
  // The reaper runs often so that expired leases come back within the tests' budgets.
  service = await startServiceProcess(t.url, { REAPER_INTERVAL_MS: '100' });
  client = createClient({ url: service.url });
});
afterAll(async () => {
  await client?.close();
  service?.child.kill('SIGTERM');
  await service?.exited;
  await t.drop();
});

const target = (): SuiteTarget => ({
  mode: 'http',
  t,
  client,
  fixtureEnv: { HOLDLINE_MODE: 'http', HOLDLINE_URL: service.url },
});

defineClientSuite(target);
defineWorkerSuite(target);

/**
 * A proxy in front of the real service that answers the next `failNext` requests itself with
 * 503 (as a load balancer does while instances restart) and forwards the others. It records
 * each request's operation name and headers.
 */
class FlakyProxy {
  failNext = 0;
  readonly requests: { operation: string; authorization: string | undefined }[] = [];
  private readonly server: http.Server;

  constructor(private readonly upstream: string) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  async listen(port = 0): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const { query } = JSON.parse(body) as { query: string };
    this.requests.push({
      operation: /^\s*(?:query|mutation)\s+(\w+)/.exec(query)?.[1] ?? 'anonymous',
      authorization: req.headers.authorization,
    });
    if (this.failNext > 0) {
      this.failNext--;
      res.writeHead(503, { 'content-type': 'text/plain' }).end('service unavailable');
      return;
    }
    const upstream = await fetch(`${this.upstream}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body,
    });
    res
      .writeHead(upstream.status, { 'content-type': 'application/json' })
      .end(await upstream.text());
  }
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('HTTP client retries', () => {
  const fastRetry = { retries: 4, initialDelayMs: 20, maxDelayMs: 100 };

  it('retries an idempotent request through 503s and sends the bearer token', async () => {
    const proxy = new FlakyProxy(service.url);
    const url = await proxy.listen();
    try {
      const flaky = createClient({ url, token: 's3cret', retry: fastRetry });
      await client.createQueue('retry-read');
      proxy.failNext = 2;
      expect(await flaky.getQueue('retry-read')).toMatchObject({ name: 'retry-read' });
      expect(proxy.requests.map((r) => r.operation)).toEqual(['Queue', 'Queue', 'Queue']);
      expect(proxy.requests.every((r) => r.authorization === 'Bearer s3cret')).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('retries a send with a dedupKey, and never one without', async () => {
    const proxy = new FlakyProxy(service.url);
    const url = await proxy.listen();
    try {
      const flaky = createClient({ url, retry: fastRetry });
      await client.createQueue('retry-send');

      proxy.failNext = 1;
      const sent = await flaky.send('retry-send', { payload: { n: 1 }, dedupKey: 'n-1' });
      expect(proxy.requests.map((r) => r.operation)).toEqual(['Send', 'Send']);

      proxy.requests.length = 0;
      proxy.failNext = 1;
      const error = await flaky.send('retry-send', { payload: { n: 2 } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HoldlineError);
      expect(error).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryable: true });
      expect(proxy.requests).toHaveLength(1);

      proxy.requests.length = 0;
      proxy.failNext = 1;
      const batch = [{ payload: { n: 3 } }, { payload: { n: 4 } }];
      await expect(flaky.sendBatch('retry-send', batch)).rejects.toMatchObject({
        code: 'UNAVAILABLE',
      });
      expect(proxy.requests).toHaveLength(1);

      expect((await client.listMessages('retry-send')).map((m) => m.id)).toEqual([sent.id]);
    } finally {
      await proxy.close();
    }
  });

  it('retries even a send without a dedupKey while the connection is refused', async () => {
    const port = await freePort();
    // Enough retries that they cannot all run out before the proxy listens.
    const flaky = createClient({
      url: `http://127.0.0.1:${port}`,
      retry: { retries: 10, initialDelayMs: 50, maxDelayMs: 200 },
    });
    await client.createQueue('retry-refused');
    const proxy = new FlakyProxy(service.url);
    const sending = flaky.send('retry-refused', { payload: { n: 1 } });
    // Nothing listens for the first attempt; the proxy comes up while the client backs off.
    await new Promise((resolve) => setTimeout(resolve, 30));
    await proxy.listen(port);
    try {
      const sent = await sending;
      expect(proxy.requests.map((r) => r.operation)).toEqual(['Send']);
      expect((await client.listMessages('retry-refused')).map((m) => m.id)).toEqual([sent.id]);
    } finally {
      await proxy.close();
    }
  });

  it('reports an unreachable service as UNAVAILABLE, not processed', async () => {
    const port = await freePort();
    const down = createClient({ url: `http://127.0.0.1:${port}`, retry: { retries: 0 } });
    const error = await down.listQueues().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HoldlineError);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', notProcessed: true, retryable: true });
  });
});
