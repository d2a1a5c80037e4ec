/**
 * What every reliability scenario shares: a ledger folder, producer and consumer processes
 * (test/reliability/fixtures, run with `node --import tsx` so that they can be SIGKILLed),
 * the queue they use, the final drain and the verdict.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { graphqlRequest } from '../helpers/graphql-http.ts';
import { pollUntil } from '../helpers/notifications.ts';
import { LedgerWriter, judge, leaseStart, readLedger, verdictLine } from './ledger.ts';
import type { DeliverEntry, LedgerEntry, Verdict } from './ledger.ts';
import { ServiceSet, runConsumer } from './load.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** Queue settings of the scenarios: short leases, quick retries, and no dead-lettering, so
 * that every message stays in play until it is acked however often its consumer dies. */
export function queueConfig(visibilityTimeoutSeconds: number): Record<string, unknown> {
  return {
    visibilityTimeout: visibilityTimeoutSeconds,
    deadLetterQueue: null,
    backoffInitialSeconds: 0.1,
    backoffMaxSeconds: 0.5,
  };
}

/** Creates `name` over GraphQL on the first service with {@link queueConfig}. */
export async function createScenarioQueue(
  services: ServiceSet,
  name: string,
  visibilityTimeoutSeconds: number,
): Promise<void> {
  const result = await services.call(
    `mutation($n: String!, $c: QueueConfigInput) { createQueue(name: $n, config: $c) { name } }`,
    { n: name, c: queueConfig(visibilityTimeoutSeconds) },
  );
  if (!result.ok) throw new Error(`createQueue failed: ${result.code} ${result.message}`);
}

/** A producer or consumer process. */
export interface FixtureProcess {
  id: string;
  child: ChildProcess;
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>;
  stderr(): string;
}

/** Options of a producer process (see fixtures/producer.ts). */
export interface ProducerSpec {
  urls: readonly string[];
  queue: string;
  count: number;
  ratePerSecond: number;
  concurrency?: number;
}

/** Options of a consumer process (see fixtures/consumer.ts). */
export interface ConsumerSpec {
  urls: readonly string[];
  queue: string;
  visibilityTimeoutSeconds: number;
  max?: number;
  workMsMax?: number;
  concurrency?: number;
  waitSeconds?: number;
}

/** Bound on the life of any fixture process, whatever happens to the test. */
const FIXTURE_LIFETIME_MS = 300_000;

/**
 * One scenario run: its ledger folder and the processes writing into it. Call dispose() in
 * a finally: it SIGKILLs what still runs and removes the folder.
 */
export class Scenario {
  private readonly processes: FixtureProcess[] = [];
  readonly startedAt = Date.now();

  private constructor(
    readonly name: string,
    readonly dir: string,
  ) {}

  static async create(name: string): Promise<Scenario> {
    return new Scenario(name, await mkdtemp(path.join(os.tmpdir(), `holdline-ledger-${name}-`)));
  }

  /** A writer for the test process's own ledger lines. */
  writer(id: string): LedgerWriter {
    return new LedgerWriter(this.ledgerFile(id));
  }

  startProducer(id: string, spec: ProducerSpec): FixtureProcess {
    return this.spawn('producer.ts', id, {
      HOLDLINE_URLS: spec.urls.join(','),
      QUEUE: spec.queue,
      PRODUCER_ID: id,
      SEND_COUNT: String(spec.count),
      SEND_RATE: String(spec.ratePerSecond),
      SEND_CONCURRENCY: String(spec.concurrency ?? 4),
    });
  }

  startConsumer(id: string, spec: ConsumerSpec): FixtureProcess {
    return this.spawn('consumer.ts', id, {
      HOLDLINE_URLS: spec.urls.join(','),
      QUEUE: spec.queue,
      CONSUMER_ID: id,
      VISIBILITY_TIMEOUT_SECONDS: String(spec.visibilityTimeoutSeconds),
      RECEIVE_MAX: String(spec.max ?? 10),
      WORK_MS_MAX: String(spec.workMsMax ?? 100),
      CONSUMER_CONCURRENCY: String(spec.concurrency ?? 2),
      WAIT_SECONDS: String(spec.waitSeconds ?? 1),
    });
  }

  /** Processes still running. */
  running(): FixtureProcess[] {
    return this.processes.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  }

  /** SIGTERMs every running process and waits (bounded) for them to finish their work. */
  async stopAll(timeoutMs = 15_000): Promise<void> {
    const running = this.running();
    for (const p of running) p.child.kill('SIGTERM');
    await withTimeout(
      Promise.all(running.map((p) => p.exited)),
      timeoutMs,
      'fixture processes to stop',
    );
  }

  /**
   * Consumes what is left, in this process, until `remaining()` (messages of the queue in
   * the database, acked ones are deleted) is 0 or `timeoutMs` passes. Expired leases of
   * killed consumers come back through the reaper meanwhile.
   */
  async drain(
    urls: readonly string[],
    queue: string,
    remaining: () => Promise<number>,
    timeoutMs = 30_000,
  ): Promise<void> {
    const ledger = this.writer('drain');
    const deadline = Date.now() + timeoutMs;
    let done = false;
    const consumer = runConsumer({
      services: new ServiceSet(urls),
      ledger,
      queue,
      consumer: 'drain',
      max: 100,
      visibilityTimeoutSeconds: 30,
      waitSeconds: 1,
      workMsMax: 0,
      concurrency: 1,
      deadline,
      stopped: () => done,
    });
    try {
      while (Date.now() < deadline && (await remaining()) > 0) await sleep(200);
    } finally {
      done = true;
      await consumer;
      ledger.close();
    }
  }

  /** Waits until the ledger shows `n` sends that returned; fails after `timeoutMs`. */
  async waitForSends(n: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.entries().filter((e) => e.t === 'send').length < n) {
      if (Date.now() > deadline)
        throw new Error(`fewer than ${n} sends returned in ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  entries(): LedgerEntry[] {
    return readLedger(this.dir).entries;
  }

  /** The verdict of everything written so far, and its one-line summary (also printed). */
  verdict(extra: Record<string, string | number> = {}): { verdict: Verdict; line: string } {
    const verdict = judge(readLedger(this.dir));
    const line = verdictLine(this.name, verdict, {
      durationS: ((Date.now() - this.startedAt) / 1000).toFixed(1),
      ...extra,
    });
    console.log(line);
    return { verdict, line };
  }

  async dispose(): Promise<void> {
    const running = this.running();
    for (const p of running) p.child.kill('SIGKILL');
    await Promise.all(running.map((p) => p.exited));
    await rm(this.dir, { recursive: true, force: true });
  }

  private ledgerFile(id: string): string {
    return path.join(this.dir, `${id}.jsonl`);
  }

  private spawn(script: string, id: string, env: Record<string, string>): FixtureProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(FIXTURES, script)], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ...env,
        LEDGER_FILE: this.ledgerFile(id),
        DURATION_MS: String(FIXTURE_LIFETIME_MS),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | string>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
    );
    const fixture = { id, child, exited, stderr: () => stderr };
    this.processes.push(fixture);
    return fixture;
  }
}

/** Counts the messages of `queue` still in the database (acked ones are deleted). */
export function remainingMessages(db: pg.Pool | pg.Client, queue: string): () => Promise<number> {
  return async () => {
    const { rows } = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM holdline.messages WHERE queue = $1',
      [queue],
    );
    return rows[0]!.n;
  };
}

/** How often each error code occurs in failed sends and acks, e.g. "UNAVAILABLE:12". */
export function failureCodes(entries: readonly LedgerEntry[]): Map<string, number> {
  const codes = new Map<string, number>();
  for (const e of entries) {
    const code = e.t === 'send-failed' ? e.code : e.t === 'ack' && !e.ok ? e.code : undefined;
    if (code !== undefined) codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  return codes;
}

/** A failure-code map as one field, e.g. "UNAVAILABLE:12,NETWORK:3" (or "none"). */
export function formatCodes(codes: Map<string, number>): string {
  return codes.size === 0 ? 'none' : [...codes].map(([c, n]) => `${c}:${n}`).join(',');
}

/**
 * Deliveries whose lease the consumer abandoned: no ack line for the receipt (its process
 * was killed while holding it, or its service died under the ack), and of those, how many
 * were delivered again later (the others were acked just before the kill: the answer, or
 * its ledger line, died with the process).
 */
export function abandonedLeases(entries: readonly LedgerEntry[]): {
  abandoned: number;
  redelivered: number;
} {
  const acked = new Set<string>();
  const deliveries = new Map<string, DeliverEntry[]>();
  for (const e of entries) {
    if (e.t === 'ack') acked.add(e.receipt);
    if (e.t === 'deliver') deliveries.set(e.id, [...(deliveries.get(e.id) ?? []), e]);
  }
  let abandoned = 0;
  let redelivered = 0;
  for (const list of deliveries.values()) {
    for (const d of list) {
      if (acked.has(d.receipt)) continue;
      abandoned++;
      if (list.some((later) => leaseStart(later) >= d.leaseExpiresAt)) redelivered++;
    }
  }
  return { abandoned, redelivered };
}

/** Rejects after `ms` with a message naming what was awaited. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP port free on 127.0.0.1 at the time of the call. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === 'object' && address !== null ? address.port : 0),
      );
    });
  });
}

/** Leader lock of the reaper (src/reaper/reaper.ts): namespace 'HLQU', key 1. */
const REAPER_LOCK = { classid: 1212961868, objid: 1 };

/** Backend pid of the service's LISTEN session in the current database, if exactly one. */
export async function listenerPid(admin: pg.Client): Promise<number | undefined> {
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = 'holdline-listener'`,
  );
  return rows.length === 1 ? rows[0]!.pid : undefined;
}

/** Whether some session holds the reaper's leader lock in the current database. */
export async function reaperLockHeld(admin: pg.Client): Promise<boolean> {
  // Advisory locks are per database; other test files' services hold the same key in theirs.
  const { rows } = await admin.query(
    `SELECT 1 FROM pg_locks
     WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND granted
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [REAPER_LOCK.classid, REAPER_LOCK.objid],
  );
  return rows.length === 1;
}

/**
 * Long-polls `queue` through the service at `url`, commits a send from `admin` (another
 * session, so only a NOTIFY can wake the poll) once the service's live listener has
 * registered the waiter, and returns the milliseconds from the start of that commit to the
 * long poll's answer. Acks the message. Fails if the poll does not get it.
 */
export async function wakeLatencyMs(url: string, admin: pg.Client, queue: string): Promise<number> {
  const poll = graphqlRequest<{ receive: { receipt: string }[] }>(
    url,
    `mutation($q: String!) { receive(queue: $q, waitSeconds: 15) { receipt } }`,
    { q: queue },
  );
  const pid = await listenerPid(admin);
  await pollUntil('the waiter to be registered by the live listener', async () => {
    const { rows } = await admin.query(
      'SELECT 1 FROM holdline.waiting_consumers WHERE queue = $1 AND listener_pid = $2',
      [queue, pid],
    );
    return rows.length > 0;
  });
  const started = performance.now();
  await admin.query(`SELECT holdline.send($1, '{"probe": true}')`, [queue]);
  const answer = await poll;
  const latency = performance.now() - started;
  const receipt = answer.data?.receive[0]?.receipt;
  if (receipt === undefined)
    throw new Error(`the long poll got nothing: ${JSON.stringify(answer)}`);
  const ack = await graphqlRequest(url, `mutation($r: String!) { ack(receipt: $r) }`, {
    r: receipt,
  });
  if (ack.errors !== undefined) throw new Error(`probe ack failed: ${JSON.stringify(ack.errors)}`);
  return latency;
}
