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
    for (const command of ['serve', 'migrate', 'send', 'stats', 'queues'])
      expect(stdout).toContain(`holdline ${command}`);
  });

  it('explains each command with --help', async () => {
    const commands = ['serve', 'migrate', 'send', 'stats', 'queues'];
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

  it('migrate reports an up-to-date schema', async () => {
    await migrateToLatest(t.db);
    const { code, stdout } = await holdline('migrate');
    expect(code).toBe(0);
    expect(stdout.trim()).toBe('schema up to date');
  });
});
