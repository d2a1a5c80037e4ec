import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';
import { deferred, within } from './support.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `npx tsx examples/<name>.ts`, as the README says, with `env` added. */
function runExample(name: string, env: Record<string, string>): Promise<{ stdout: string }> {
  return run(process.execPath, ['--import', 'tsx', `examples/${name}.ts`], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
}

let t: TestDatabase;
let service: ServiceProcess;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('examples/ against a fresh service (npm start)', () => {
  beforeAll(async () => {
    service = await startServiceProcess(t.url);
  });
  afterAll(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
  });

  it('producer.ts sends, and worker.ts handles every message, then stops on SIGINT', async () => {
    const produced = await runExample('producer', { HOLDLINE_URL: service.url, COUNT: '12' });
    expect(produced.stdout).toMatch(/^sent 12 messages to "emails"/m);
    expect(produced.stdout).toMatch(/^queue "emails": 12 ready, 0 leased/m);

    const worker = spawn(process.execPath, ['--import', 'tsx', 'examples/worker.ts'], {
      cwd: ROOT,
      env: { ...process.env, HOLDLINE_URL: service.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const emailed = new Set<string>();
    const allEmailed = deferred();
    const lines: string[] = [];
    createInterface({ input: worker.stdout }).on('line', (line) => {
      lines.push(line);
      const match = /^emailed (\S+) \(attempt 1\)$/.exec(line);
      if (match !== null) emailed.add(match[1]!);
      if (emailed.size === 12) allEmailed.resolve();
    });
    const exited = new Promise<number | null>((resolve) => worker.once('exit', resolve));
    try {
      await within(30_000, 'worker emailed 12', allEmailed.promise);
    } finally {
      worker.kill('SIGINT');
    }
    expect(await within(15_000, 'worker exit', exited)).toBe(0);
    expect(lines.at(-1)).toBe('worker stopped');
    const { rows } = await sql<{ total: number }>`
      SELECT total::int FROM holdline.queue_stats WHERE queue = 'emails'
    `.execute(t.db);
    expect(rows[0]?.total).toBe(0);
  });

  it('flow-control.ts caps a rate-limited queue fed by a schedule, and says why the fifth waits', async () => {
    const { stdout } = await runExample('flow-control', { HOLDLINE_URL: service.url });
    expect(stdout).toMatch(
      /^schedule "partner-sync" fires next at \d{4}-\d\d-\d\dT\d\d:00:00\.000Z$/m,
    );
    expect(stdout).toMatch(/^leased 4; message \d+ waits: CONCURRENCY_CAP, 0 ahead$/m);
    const { rows } = await sql<{ max_in_flight: number; rate_limit_count: number }>`
      SELECT max_in_flight, rate_limit_count FROM holdline.queues WHERE name = 'partner-api'
    `.execute(t.db);
    expect(rows[0]).toEqual({ max_in_flight: 4, rate_limit_count: 10 });
  });
});

describe('examples/ against a fresh database', () => {
  it('transactional-order.ts commits each order with its message, and rolls back both', async () => {
    const { stdout } = await runExample('transactional-order', { DATABASE_URL: t.url });
    expect(stdout).toMatch(/^rolled back: queue total 3 before, 3 after$/m);
    expect(stdout.match(/^shipping order \d+ \(sent with (kysely|pg|sql)\)$/gm)).toHaveLength(3);
    const { rows } = await sql<{ customer: string }>`
      SELECT customer FROM example_orders ORDER BY id
    `.execute(t.db);
    expect(rows.map((r) => r.customer)).toEqual(['ada', 'grace', 'linus']);
    const stats = await sql<{ total: number }>`
      SELECT total::int FROM holdline.queue_stats WHERE queue = 'example-orders'
    `.execute(t.db);
    expect(stats.rows[0]?.total).toBe(0);
  });

  it('tracing.ts prints one trace from the send to both attempts of the handler', async () => {
    const { stdout } = await runExample('tracing', { DATABASE_URL: t.url });
    const traceId = /^trace ([0-9a-f]{32}): place order/m.exec(stdout)?.[1];
    expect(traceId).toBeDefined();
    expect(stdout).toMatch(/^attempt 1 runs in the order's trace: true$/m);
    expect(stdout).toMatch(/^attempt 2 runs in the order's trace: true$/m);
    expect(stdout).toContain(`"traceparent":"00-${traceId}-`);
    // The console exporter's spans: the send and both process spans, in the order's trace.
    for (const name of ['send traced-orders', 'process traced-orders']) {
      expect(stdout).toMatch(new RegExp(`traceId: '${traceId}',[^]*?name: '${name}'`));
    }
    expect(stdout.match(/name: 'process traced-orders'/g)).toHaveLength(2);
    expect(stdout).toMatch(/status: \{ code: 2, message: 'warehouse busy' \}/);
  });
});
