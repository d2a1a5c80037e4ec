#!/usr/bin/env node
/**
 * The `holdline` command: serve, migrate, send, stats, queues. Commands other than serve talk
 * to the database directly (DATABASE_URL, or the embedded PostgreSQL of `npm start`).
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import pino from 'pino';
import { createDatabase, createPool } from './db/pool.ts';
import { QueueError, allQueueStats, listQueues, queueStats, send } from './queue/index.ts';
import type { Executor } from './queue/index.ts';
import { ConfigError, loadConfig } from './server/config.ts';
import { resolveDatabase } from './server/database.ts';
import { createLogger } from './server/logger.ts';
import { migrate, serve, stopOnSignals } from './server/main.ts';

interface Command {
  usage: string;
  summary: string;
  options?: ParseArgsConfig['options'];
  run(args: { positionals: string[]; values: Record<string, unknown> }): Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    usage: 'holdline serve',
    summary: 'Serve GraphQL on http://HOST:PORT/graphql with /healthz, /readyz and /metrics.',
    async run() {
      const config = loadConfig();
      const service = await serve();
      stopOnSignals(service, config, createLogger(config));
    },
  },
  migrate: {
    usage: 'holdline migrate',
    summary: 'Apply pending migrations to DATABASE_URL (or the embedded database) and exit.',
    async run() {
      await withDatabase(async (_db, url) => {
        const applied = await migrate(url, pino({ level: 'silent' }));
        print(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'schema up to date');
      });
    },
  },
  send: {
    usage:
      'holdline send <queue> <json> [--delay seconds] [--priority n] [--dedup-key k] [--group-key g]',
    summary: 'Send one message; prints it as JSON.',
    options: {
      delay: { type: 'string' },
      priority: { type: 'string' },
      'dedup-key': { type: 'string' },
      'group-key': { type: 'string' },
    },
    async run({ positionals, values }) {
      const [queue, json] = positionals;
      if (queue === undefined || json === undefined)
        throw new UsageError('send needs <queue> and <json>');
      let payload: unknown;
      try {
        payload = JSON.parse(json);
      } catch {
        throw new UsageError('<json> is not valid JSON');
      }
      await withDatabase(async (db) => {
        const message = await send(db, {
          queue,
          message: {
            payload,
            delaySeconds: optionalInteger(values.delay, '--delay'),
            priority: optionalInteger(values.priority, '--priority'),
            dedupKey: values['dedup-key'] as string | undefined,
            groupKey: values['group-key'] as string | undefined,
          },
        });
        print(JSON.stringify(message, null, 2));
      });
    },
  },
  stats: {
    usage: 'holdline stats [queue]',
    summary: 'Print ready / delayed / leased / total counts per queue.',
    async run({ positionals }) {
      const [queue] = positionals;
      await withDatabase(async (db) => {
        if (queue === undefined) {
          console.table(await allQueueStats(db));
          return;
        }
        const stats = await queueStats(db, { queue });
        if (stats === undefined) {
          throw new QueueError('QUEUE_NOT_FOUND', `queue "${queue}" does not exist`);
        }
        console.table([stats]);
      });
    },
  },
  queues: {
    usage: 'holdline queues',
    summary: 'List queues with their settings.',
    async run() {
      await withDatabase(async (db) => {
        const queues = await listQueues(db);
        console.table(queues.map((q) => ({ name: q.name, paused: q.paused, ...q.config })));
      });
    },
  },
};

class UsageError extends Error {}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

function optionalInteger(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^-?\d+$/.test(value))
    throw new UsageError(`${flag} takes an integer`);
  return n;
}

async function withDatabase(run: (db: Executor, url: string) => Promise<void>): Promise<void> {
  const config = loadConfig();
  const target = await resolveDatabase(config, pino({ level: 'silent' }));
  const db = createDatabase(createPool({ connectionString: target.url, max: 2 }));
  try {
    await run(db, target.url);
  } finally {
    await db.destroy();
    await target.release();
  }
}

function help(): string {
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}`);
  return `Holdline: a transactional message queue in PostgreSQL.\n\nUsage:\n${lines.join('\n')}\n\nEach command takes --help. Configuration: environment variables (see README).`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    print(help());
    return name === undefined ? 1 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`unknown command "${name}"\n\n${help()}\n`);
    return 1;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    print(`${command.usage}\n\n${command.summary}`);
    return 0;
  }
  try {
    const { positionals, values } = parseArgs({
      args: rest,
      options: command.options ?? {},
      allowPositionals: true,
      strict: true,
    });
    await command.run({ positionals, values });
    return 0;
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error)) {
      process.stderr.write(`${error.message}\n\nUsage: ${command.usage}\n`);
      return 2;
    }
    if (error instanceof QueueError || error instanceof ConfigError) {
      process.stderr.write(
        `${error instanceof QueueError ? error.code : 'CONFIG'}: ${error.message}\n`,
      );
      return 1;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve keeps running; every other command exits when done.
    if (code !== 0 || process.argv[2] !== 'serve') process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
