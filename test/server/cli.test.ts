import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/db/migrator.ts';
import { createQueue } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { CLI_NODE_ARGS } from '../helpers/service-process.ts';

const run = promisify(execFile);

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await createQueue(t.db, { name: 'cli' });
});
afterAll(async () => {
  await t.drop();
});

/** Runs the real `holdline` command against the test database. */
async function holdline(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI_NODE_ARGS, ...args], {
      env: { ...process.env, DATABASE_URL: t.url },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('the holdline command', () => {
  it('lists its commands with --help', async () => {
    const { code, stdout } = await holdline('--help');
    expect(code).toBe(0);
    for (const command of [
      'serve',
      'migrate',
      'create-queue',
      'send',
      'receive',
      'ack',
      'nack',
      'stats',
      'queues',
    ])
      expect(stdout).toContain(`holdline ${command}`);
  });

  it('explains each command with --help', async () => {
    const commands = [
      'serve',
      'migrate',
      'create-queue',
      'send',
      'receive',
      'ack',
      'nack',
      'stats',
      'queues',
    ];
    const results = await Promise.all(commands.map((command) => holdline(command, '--help')));
    results.forEach(({ code, stdout }, i) => {
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^holdline ${commands[i]}`));
    });
  });

  it('sends a message and prints it', async () => {
    const { code, stdout } = await holdline('send', 'cli', '{"id": 7}', '--priority', '3');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({
      queue: 'cli',
      payload: { id: 7 },
      priority: 3,
      state: 'READY',
    });
  });

  it('prints stats and queues', async () => {
    const stats = await holdline('stats', 'cli');
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/cli/);
    const queues = await holdline('queues');
    expect(queues.code).toBe(0);
    expect(queues.stdout).toContain('cli.dlq');
  });

  it('exits 2 with usage for bad arguments and 1 with the code for a missing queue', async () => {
    const [badJson, unknownFlag, missing, unknown] = await Promise.all([
      holdline('send', 'cli', '{nope'),
      holdline('send', 'cli', '{}', '--bogus'),
      holdline('send', 'nowhere', '{}'),
      holdline('frobnicate'),
    ]);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toContain('<json> is not valid JSON');
    expect(unknownFlag.code).toBe(2);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('QUEUE_NOT_FOUND');
    expect(unknown.code).toBe(1);
  });

  it('makes a round trip alone: create-queue, send, receive, ack, stats', async () => {
    const created = await holdline('create-queue', 'trip', '--max-attempts', '3');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toBe(
      'created queue "trip": visibility timeout 30 s, max attempts 3, dead-letter queue trip.dlq\n',
    );
    const sent = await holdline('send', 'trip', '{"id": 1}');
    expect(sent.code).toBe(0);
    const id = (JSON.parse(sent.stdout) as { id: string }).id;

    const received = await holdline('receive', 'trip', '--max', '10');
    expect(received.code).toBe(0);
    const lines = received.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^RECEIPT +ID +ATTEMPTS +PAYLOAD$/);
    const [receipt, shownId, attempts, payload] = lines[1]!.split(/ +/);
    expect(receipt).toMatch(new RegExp(`^${id}\\.[0-9a-f-]{36}$`));
    expect([shownId, attempts, payload]).toEqual([id, '1', '{"id":1}']);
    // The columns line up: each header starts where its values start.
    expect(lines[0]!.indexOf('ID')).toBe(lines[1]!.indexOf(` ${id} `) + 1);

    const leased = await holdline('stats', 'trip');
    expect(leased.stdout).toMatch(
      /^QUEUE +READY +DELAYED +LEASED +TOTAL +OLDEST READY \(S\)\ntrip +0 +0 +1 +1\n$/,
    );
    expect(leased.stdout).not.toMatch(/\(index\)|'/);

    const acked = await holdline('ack', receipt!);
    expect(acked).toMatchObject({ code: 0, stdout: `acked ${receipt}\n` });
    const again = await holdline('ack', receipt!);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("LEASE_LOST: this receipt's message is gone");
    const empty = await holdline('stats', 'trip');
    expect(empty.stdout).toMatch(/\ntrip +0 +0 +0 +0\n$/);
    const none = await holdline('receive', 'trip');
    expect(none).toMatchObject({ code: 0, stdout: '', stderr: 'no message was ready in "trip"\n' });
  });

  it('nacks a delivery back for a retry, and prints deliveries as JSON with --json', async () => {
    expect((await holdline('create-queue', 'trip-nack')).code).toBe(0);
    expect((await holdline('send', 'trip-nack', '"again"')).code).toBe(0);
    const first = await holdline('receive', 'trip-nack', '--json');
    const [delivery] = JSON.parse(first.stdout) as {
      receipt: string;
      message: { attempts: number };
    }[];
    expect(delivery?.message.attempts).toBe(1);
    const nacked = await holdline('nack', delivery!.receipt, '--delay', '0', '--error', 'boom');
    expect(nacked).toMatchObject({
      code: 0,
      stdout: `nacked ${delivery!.receipt}: it will be retried\n`,
    });
    const second = await holdline('receive', 'trip-nack', '--json', '--wait', '1');
    expect(JSON.parse(second.stdout)).toMatchObject([
      { message: { payload: 'again', attempts: 2, lastError: 'boom' } },
    ]);
  });

  it('refuses bad input to the new commands with a clear error and changes nothing', async () => {
    const [noName, badAttempts, outOfRange, noQueue, badMax, noReceipt, badReceipt] =
      await Promise.all([
        holdline('create-queue'),
        holdline('create-queue', 'trip-bad', '--max-attempts', 'many'),
        holdline('create-queue', 'trip-bad', '--max-attempts', '0'),
        holdline('receive', 'trip-nobody'),
        holdline('receive', 'cli', '--max', '2000'),
        holdline('ack'),
        holdline('ack', 'not-a-receipt'),
      ]);
    expect(noName).toMatchObject({ code: 2 });
    expect(noName.stderr).toContain('create-queue needs one <name>');
    expect(badAttempts).toMatchObject({ code: 2 });
    expect(badAttempts.stderr).toContain('--max-attempts takes an integer');
    expect(outOfRange).toMatchObject({ code: 1 });
    expect(outOfRange.stderr).toContain(
      'BAD_USER_INPUT: maxAttempts must be an integer from 1 to 1000; got 0',
    );
    expect(noQueue).toMatchObject({ code: 1 });
    expect(noQueue.stderr).toContain('QUEUE_NOT_FOUND');
    expect(badMax.stderr).toContain('BAD_USER_INPUT: max must be an integer from 1 to 1000');
    expect(noReceipt).toMatchObject({ code: 2 });
    expect(badReceipt).toMatchObject({ code: 1 });
    expect(badReceipt.stderr).toContain('BAD_USER_INPUT: receipt is malformed');
    const queues = await holdline('queues');
    expect(queues.stdout).not.toContain('trip-bad');
  });

  it('migrate reports an up-to-date schema', async () => {
    await migrateToLatest(t.db);
    const { code, stdout } = await holdline('migrate');
    expect(code).toBe(0);
    expect(stdout.trim()).toBe('schema up to date');
  });
});
