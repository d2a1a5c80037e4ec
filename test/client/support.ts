import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { HoldlineClient, WorkerTransport } from '../../src/index.ts';
import type { TestDatabase } from '../helpers/database.ts';

/** What a shared suite runs against: one mode's client over one test database. */
export interface SuiteTarget {
  mode: 'in-process' | 'http';
  t: TestDatabase;
  client: HoldlineClient;
  /** Environment telling test/fixtures/worker-process.ts how to reach the queue. */
  fixtureEnv: Record<string, string>;
}

/** A promise with its resolve function, for awaiting a signal from inside a handler. */
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** `done` resolves once `tick()` has been called `count` times. */
export function countdown(count: number): { done: Promise<void>; tick(): void } {
  const finished = deferred();
  let left = count;
  if (left <= 0) finished.resolve();
  return {
    done: finished.promise,
    tick() {
      left--;
      if (left === 0) finished.resolve();
    },
  };
}

/** Rejects after `ms` with `what` in the message; for bounding awaits on events. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Calls to a transport, counted by operation; the calls go to the real client. */
export interface CountingTransport extends WorkerTransport {
  calls: { receive: number; ackBatch: number; ackedReceipts: number; extendLease: number };
}

/** Wraps a real client to count the worker's calls (nothing is faked: each call goes through). */
export function countingTransport(client: HoldlineClient): CountingTransport {
  const calls = { receive: 0, ackBatch: 0, ackedReceipts: 0, extendLease: 0 };
  return {
    calls,
    receive(queue, options) {
      calls.receive++;
      return client.receive(queue, options);
    },
    ackBatch(receipts) {
      calls.ackBatch++;
      calls.ackedReceipts += receipts.length;
      return client.ackBatch(receipts);
    },
    nack: (receipt, options) => client.nack(receipt, options),
    extendLease(receipt, seconds) {
      calls.extendLease++;
      return client.extendLease(receipt, seconds);
    },
    getQueue: (name) => client.getQueue(name),
  };
}

const FIXTURE = fileURLToPath(new URL('../fixtures/worker-process.ts', import.meta.url));

/** test/fixtures/worker-process.ts running as a child process, and what it printed. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Message ids it has leased (one stdout line each). */
  leased: string[];
  /** Resolves once it has leased `count` messages. */
  leasedCount(count: number): Promise<void>;
  exited: Promise<number | string>;
}

/** Spawns the worker fixture with tsx; it leases and never acks. */
export function spawnWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const leased: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const match = /^leased (\d+)$/.exec(line);
    if (match === null) return;
    leased.push(match[1]!);
    for (const waiter of waiters) if (leased.length >= waiter.count) waiter.resolve();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return {
    child,
    leased,
    exited,
    leasedCount(count) {
      if (leased.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        waiters.push({ count, resolve });
        void exited.then((code) =>
          reject(new Error(`worker process exited (${code}) early: ${stderr}`)),
        );
      });
    },
  };
}
