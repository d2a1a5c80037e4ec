#!/usr/bin/env node
/**
 * The `holdline` command: serve, migrate, create-queue, send, receive, ack, nack, stats,
 * queues, token create | list | revoke.
 * Commands other than serve talk to the database directly (DATABASE_URL, or the embedded
 * PostgreSQL of `npm start`).
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import pino from 'pino';
import { TokenError, createToken, listTokens, revokeToken } from './auth/index.ts';
import { EmbeddedPostgresError } from './db/embedded-postgres.ts';
import { QueueError } from './queue/index.ts';
import type { QueueStats } from './queue/index.ts';
import { ListenError } from './server/app.ts';
import { ConfigError, loadConfig } from './server/config.ts';
import { resolveDatabase } from './server/database.ts';
import { limitHeapGrowth } from './server/heap.ts';
import { migrate, serve, stopOnSignals } from './server/main.ts';
import { createRuntime } from './server/runtime.ts';
import type { Runtime } from './server/runtime.ts';
import { textTable } from './text-table.ts';

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
      limitHeapGrowth(config.heapGrowthPercent);
      const service = await serve(config);
      stopOnSignals(service, config, service.logger);
    },
  },
  migrate: {
    usage: 'holdline migrate',
    summary: 'Apply pending migrations to DATABASE_URL (or the embedded database) and exit.',
    async run() {
      await withRuntime(async (_runtime, url) => {
        const applied = await migrate(url, pino({ level: 'silent' }));
        print(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'schema up to date');
      });
    },
  },
  'create-queue': {
    usage:
      'holdline create-queue <name> [--visibility-timeout seconds] [--max-attempts n] [--dead-letter-queue name]',
    summary:
      'Create a queue; its dead-letter queue is <name>.dlq unless --dead-letter-queue names ' +
      'another. Prints the queue and its settings.',
    options: {
      'visibility-timeout': { type: 'string' },
      'max-attempts': { type: 'string' },
      'dead-letter-queue': { type: 'string' },
    },
    async run({ positionals, values }) {
      const [name, ...extra] = positionals;
      if (name === undefined || extra.length > 0) {
        throw new UsageError('create-queue needs one <name>');
      }
      const visibilityTimeoutSeconds = optionalInteger(
        values['visibility-timeout'],
        '--visibility-timeout',
      );
      const maxAttempts = optionalInteger(values['max-attempts'], '--max-attempts');
      const deadLetterQueue = values['dead-letter-queue'] as string | undefined;
      await withRuntime(async ({ engine }) => {
        const queue = await engine.createQueue(name, {
          ...(visibilityTimeoutSeconds === undefined ? {} : { visibilityTimeoutSeconds }),
          ...(maxAttempts === undefined ? {} : { maxAttempts }),
          ...(deadLetterQueue === undefined ? {} : { deadLetterQueue }),
        });
        print(
          `created queue "${queue.name}": visibility timeout ${queue.config.visibilityTimeoutSeconds} s, ` +
            `max attempts ${queue.config.maxAttempts}, dead-letter queue ${queue.config.deadLetterQueue ?? 'none'}`,
        );
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
      await withRuntime(async ({ engine }) => {
        const message = await engine.send(queue, {
          payload,
          delaySeconds: optionalInteger(values.delay, '--delay'),
          priority: optionalInteger(values.priority, '--priority'),
          dedupKey: values['dedup-key'] as string | undefined,
          groupKey: values['group-key'] as string | undefined,
        });
        print(JSON.stringify(message, null, 2));
      });
    },
  },
  receive: {
    usage:
      'holdline receive <queue> [--max n] [--visibility-timeout seconds] [--wait seconds] [--json]',
    summary:
      'Lease up to --max messages (default 1) for --visibility-timeout seconds (default: the ' +
      "queue's) and print each delivery's receipt, message id, attempts and payload; with " +
      '--wait, wait up to that many seconds (at most 20) for one. Settle each with ' +
      '`holdline ack <receipt>` or `holdline nack <receipt>` before its lease ends.',
    options: {
      max: { type: 'string' },
      'visibility-timeout': { type: 'string' },
      wait: { type: 'string' },
      json: { type: 'boolean' },
    },
    async run({ positionals, values }) {
      const [queue, ...extra] = positionals;
      if (queue === undefined || extra.length > 0) {
        throw new UsageError('receive needs one <queue>');
      }
      const max = optionalInteger(values.max, '--max');
      const visibilityTimeoutSeconds = optionalInteger(
        values['visibility-timeout'],
        '--visibility-timeout',
      );
      const waitSeconds = optionalInteger(values.wait, '--wait');
      // Only a wait needs the LISTEN connection, which wakes it at the commit of a send.
      const listen = waitSeconds !== undefined && waitSeconds > 0;
      await withRuntime(
        async ({ engine }) => {
          const deliveries = await engine.receive({
            queue,
            max,
            visibilityTimeoutSeconds,
            waitSeconds,
          });
          if (values.json === true) {
            print(JSON.stringify(deliveries, null, 2));
            return;
          }
          if (deliveries.length === 0) {
            process.stderr.write(`no message was ready in "${queue}"\n`);
            return;
          }
          print(
            textTable(
              ['receipt', 'id', 'attempts', 'payload'],
              deliveries.map((d) => [
                d.receipt,
                d.message.id,
                d.message.attempts,
                JSON.stringify(d.message.payload),
              ]),
            ),
          );
        },
        { listen },
      );
    },
  },
  ack: {
    usage: 'holdline ack <receipt> [receipt …]',
    summary:
      'Acknowledge deliveries: their messages are done and deleted. Each receipt is acked in ' +
      'turn; one whose lease was lost stops the command with LEASE_LOST and why.',
    async run({ positionals }) {
      if (positionals.length === 0) throw new UsageError('ack needs at least one <receipt>');
      await withRuntime(async ({ engine }) => {
        for (const receipt of positionals) {
          await engine.ack(receipt);
          print(`acked ${receipt}`);
        }
      });
    },
  },
  nack: {
    usage: 'holdline nack <receipt> [--delay seconds] [--error text]',
    summary:
      "Give a delivery back as failed: retried after --delay seconds (default: the queue's " +
      'backoff), or dead-lettered once it has used its attempts; --error is kept as its last error.',
    options: { delay: { type: 'string' }, error: { type: 'string' } },
    async run({ positionals, values }) {
      const [receipt, ...extra] = positionals;
      if (receipt === undefined || extra.length > 0) {
        throw new UsageError('nack needs one <receipt>');
      }
      const delaySeconds = optionalInteger(values.delay, '--delay');
      await withRuntime(async ({ engine }) => {
        const nacked = await engine.nack(receipt, {
          delaySeconds,
          error: values.error as string | undefined,
        });
        print(
          nacked.outcome === 'retried'
            ? `nacked ${receipt}: it will be retried`
            : `nacked ${receipt}: it used its attempts and was dead-lettered`,
        );
      });
    },
  },
  stats: {
    usage: 'holdline stats [queue]',
    summary: 'Print ready / delayed / leased / total counts per queue.',
    async run({ positionals }) {
      const [queue] = positionals;
      await withRuntime(async ({ engine }) => {
        let all: QueueStats[];
        if (queue === undefined) {
          all = await engine.allQueueStats();
        } else {
          const stats = await engine.queueStats(queue);
          if (stats === undefined) {
            throw new QueueError('QUEUE_NOT_FOUND', `queue "${queue}" does not exist`);
          }
          all = [stats];
        }
        print(
          textTable(
            ['queue', 'ready', 'delayed', 'leased', 'total', 'oldest ready (s)'],
            all.map((q) => [
              q.queue,
              q.ready,
              q.delayed,
              q.leased,
              q.total,
              q.oldestReadyAgeSeconds?.toFixed(1),
            ]),
          ),
        );
      });
    },
  },
  token: {
    usage: 'holdline token create | list | revoke',
    summary: 'Manage API tokens; `holdline token <subcommand> --help` for each.',
    run() {
      return Promise.reject(new UsageError('token needs a subcommand: create, list or revoke'));
    },
  },
  'token create': {
    usage: 'holdline token create --name <name> --scopes <scopes>',
    summary:
      'Create an API token and print its secret, once: only a hash is stored. Scopes are ' +
      'comma-separated: "admin", or <read|send|receive|admin>:<queue pattern> where * ' +
      'matches any characters, e.g. --scopes "send:orders*,receive:orders*" (orders.* alone would not match orders). The secret ' +
      'alone goes to stdout (TOKEN=$(holdline token create …)); what was created, to stderr.',
    options: { name: { type: 'string' }, scopes: { type: 'string' } },
    async run({ positionals, values }) {
      const name = values.name as string | undefined;
      const scopes = values.scopes as string | undefined;
      if (name === undefined || scopes === undefined || positionals.length > 0) {
        throw new UsageError('token create needs --name and --scopes');
      }
      await withRuntime(async ({ db }) => {
        const { token, secret } = await createToken(db, { name, scopes });
        print(secret);
        process.stderr.write(
          `created token "${token.name}" with scopes ${token.scopes.join(',')}: ` +
            'keep the secret now, it cannot be shown again\n',
        );
      });
    },
  },
  'token list': {
    usage: 'holdline token list [--all] [--json]',
    summary:
      'List live tokens (with --all, revoked ones too): name, scopes, when created, last ' +
      'used and revoked. Never secrets: they are not stored.',
    options: { all: { type: 'boolean' }, json: { type: 'boolean' } },
    async run({ values }) {
      await withRuntime(async ({ db }) => {
        const tokens = await listTokens(db, { includeRevoked: values.all === true });
        if (values.json === true) {
          print(JSON.stringify(tokens, null, 2));
          return;
        }
        print(
          textTable(
            ['name', 'scopes', 'created', 'last used', 'revoked'],
            tokens.map((t) => [t.name, t.scopes.join(','), t.createdAt, t.lastUsedAt, t.revokedAt]),
          ),
        );
      });
    },
  },
  'token revoke': {
    usage: 'holdline token revoke <name>',
    summary:
      'Revoke the live token named <name>. Running services refuse it within a second ' +
      '(they reuse a token lookup for at most that long). Its row is kept for `token list --all`.',
    async run({ positionals }) {
      const [name] = positionals;
      if (name === undefined || positionals.length > 1) {
        throw new UsageError('token revoke needs one <name>');
      }
      await withRuntime(async ({ db }) => {
        if (!(await revokeToken(db, { name }))) {
          throw new TokenError('BAD_USER_INPUT', `no live token is named "${name}"`);
        }
        print(`revoked token "${name}"`);
      });
    },
  },
  queues: {
    usage: 'holdline queues',
    summary: 'List queues with their settings.',
    async run() {
      await withRuntime(async ({ engine }) => {
        const queues = await engine.listQueues();
        print(
          textTable(
            [
              'name',
              'paused',
              'visibility (s)',
              'max attempts',
              'dead-letter queue',
              'max payload (bytes)',
            ],
            queues.map((q) => [
              q.name,
              q.paused ? 'yes' : 'no',
              q.config.visibilityTimeoutSeconds,
              q.config.maxAttempts,
              q.config.deadLetterQueue,
              q.config.maxPayloadBytes,
            ]),
          ),
        );
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

/**
 * Runs a command over the runtime (composition root) of DATABASE_URL or the embedded
 * database: a pool of two, the engine; no reaper, since a command does not stay, and a LISTEN
 * connection only with `listen` (a receive that waits).
 */
async function withRuntime(
  run: (runtime: Runtime, url: string) => Promise<void>,
  options: { listen?: boolean } = {},
): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: 'silent' });
  const target = await resolveDatabase(config, logger);
  const runtime = createRuntime({
    logger,
    databaseUrl: target.url,
    poolMax: 2,
    listenDatabaseUrl: options.listen === true ? target.url : undefined,
    history: config.historyEnabled,
  });
  try {
    await runtime.start();
    await run(runtime, target.url);
  } finally {
    await runtime.stop();
    await target.release();
  }
}

function help(): string {
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}`);
  return `Holdline: a transactional message queue in PostgreSQL.\n\nUsage:\n${lines.join('\n')}\n\nEach command takes --help. Configuration: environment variables (see README).`;
}

async function main(argv: string[]): Promise<number> {
  let [name, ...rest] = argv;
  // `token create …` and friends are commands of two words.
  const sub = rest[0];
  if (name === 'token' && sub !== undefined && !sub.startsWith('-')) {
    name = `token ${sub}`;
    rest = rest.slice(1);
  }
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
    if (
      error instanceof QueueError ||
      error instanceof TokenError ||
      error instanceof ConfigError
    ) {
      process.stderr.write(
        `${error instanceof ConfigError ? 'CONFIG' : error.code}: ${error.message}\n`,
      );
      return 1;
    }
    // Failures to start: one line that says why and what to change, no stack.
    if (error instanceof EmbeddedPostgresError || error instanceof ListenError) {
      process.stderr.write(`${error.message}\n`);
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
