/**
 * The bound behind "fail fast, never hang" when the database host does not answer at all
 * (down behind a firewall, mid-failover), which a clean restart (postgres-restart.test.ts)
 * never exercises: the pool gives up after its connection timeout and the engine reports
 * the retryable UNAVAILABLE. The "host" is a local socket that accepts and never replies.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { QueueError, receive, send } from '../../src/queue/operations.ts';

let silent: net.Server;
const sockets = new Set<net.Socket>();
let url: string;

beforeAll(async () => {
  silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  url = `postgres://postgres@127.0.0.1:${(silent.address() as net.AddressInfo).port}/none`;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

describe('a database host that never answers', () => {
  it('fails each operation with UNAVAILABLE once the connection timeout passes', async () => {
    const db = createDatabase(
      createPool({ connectionString: url, max: 1, connectionTimeoutMs: 300 }),
    );
    try {
      for (const operation of [
        () => send(db, { queue: 'q', message: { payload: 1 } }),
        () => receive(db, { queue: 'q' }),
      ]) {
        const started = Date.now();
        const error = await operation().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(QueueError);
        expect((error as QueueError).code).toBe('UNAVAILABLE');
        expect(Date.now() - started).toBeLessThan(5_000);
      }
    } finally {
      await db.destroy();
    }
  });
});
