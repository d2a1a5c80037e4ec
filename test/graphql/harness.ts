import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pino from 'pino';
import type { Logger } from 'pino';
import { Listener } from '../../src/db/listener.ts';
import { createGraphQLHandler } from '../../src/graphql/schema.ts';
import type { GraphQLHandler, GraphQLHandlerOptions } from '../../src/graphql/schema.ts';
import { QueueEngine, WAKEUP_CHANNEL } from '../../src/queue/operations.ts';
import type { TestDatabase } from '../helpers/database.ts';

/** One GraphQL error as a client sees it. */
export interface GraphQLErrorJson {
  message: string;
  path?: (string | number)[];
  extensions?: { code?: string; [key: string]: unknown };
}

/** A JSON object from a response, read loosely in assertions. */
export type JsonObject = Record<string, unknown>;

/** A message as the tests select it; fields a query did not select are absent. */
export interface MessageJson {
  id: string;
  queue?: string;
  payload?: unknown;
  headers?: unknown;
  priority?: number;
  attempts?: number;
  state?: string;
  runAt?: string;
  createdAt?: string;
  lastError?: string | null;
  originQueue?: string | null;
  position?: number | null;
  estimatedWaitSeconds?: number | null;
}

/** A delivery as the tests select it. */
export interface DeliveryJson {
  receipt: string;
  leaseExpiresAt: string;
  message: MessageJson;
}

/** Queue stats as the tests select them. */
export interface StatsJson {
  queue?: string;
  ready?: number;
  delayed?: number;
  leased?: number;
  total?: number;
  oldestReadyAgeSeconds?: number | null;
}

/** A queue as the tests select it. */
export interface QueueJson {
  name: string;
  paused?: boolean;
  createdAt?: string;
  bindings?: string[];
  config?: JsonObject;
  stats?: StatsJson;
}

/** One pino log line. */
export interface LogLine {
  level: number;
  msg: string;
  err?: { message: string; stack: string };
  [field: string]: unknown;
}

/** One GraphQL response as a client sees it, with the HTTP status. */
export interface GraphQLResult<T = JsonObject> {
  status: number;
  data?: T | null;
  errors?: GraphQLErrorJson[];
}

/** A pino logger whose lines are kept, parsed, for assertions on what was logged. */
export function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

/** An engine on the test database with its own LISTEN connection, plus a GraphQL handler. */
export interface GraphQLService {
  engine: QueueEngine;
  listener: Listener;
  handler: GraphQLHandler;
  /** Every log line the service wrote. */
  logs: LogLine[];
  /** Runs one operation in-process through yoga.fetch. */
  request<T = JsonObject>(
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<GraphQLResult<T>>;
  /** Runs one operation and fails the test unless it has data and no errors. */
  ok<T = JsonObject>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** Runs one operation and returns its single error's code, failing unless there is one. */
  errorCode(query: string, variables?: Record<string, unknown>): Promise<string | undefined>;
  stop(): Promise<void>;
}

/** Starts an engine and GraphQL handler as the brief says; stop() before t.drop(). */
export async function startService(
  t: TestDatabase,
  options: { pollIntervalMs?: number; bulkChunkSize?: number } & Partial<
    Omit<GraphQLHandlerOptions, 'engine'>
  > = {},
): Promise<GraphQLService> {
  const captured = capturingLogger();
  const logger = options.logger ?? captured.logger;
  const listener = new Listener({ connectionString: t.url, channel: WAKEUP_CHANNEL, logger });
  await listener.start();
  const engine = new QueueEngine({
    db: t.db,
    listener,
    logger,
    pollIntervalMs: options.pollIntervalMs,
    bulkChunkSize: options.bulkChunkSize,
  });
  engine.start();
  const handler = createGraphQLHandler({ ...options, engine, logger });

  const request = async <T>(
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<GraphQLResult<T>> => {
    const response = await handler.yoga.fetch('http://holdline.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as Omit<GraphQLResult<T>, 'status'>;
    return { status: response.status, ...body };
  };

  return {
    engine,
    listener,
    handler,
    logs: captured.lines,
    request,
    async ok<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
      const result = await request<T>(query, variables);
      if (result.errors !== undefined || result.data == null) {
        throw new Error(`expected data, got ${JSON.stringify(result)}`);
      }
      return result.data;
    },
    async errorCode(query: string, variables?: Record<string, unknown>) {
      const result = await request(query, variables);
      if (result.errors?.length !== 1) {
        throw new Error(`expected one error, got ${JSON.stringify(result)}`);
      }
      return result.errors[0]!.extensions?.code;
    },
    async stop() {
      await handler.releaseSubscriptions();
      await engine.stop();
      await listener.stop();
    },
  };
}

/** What is in the database, to show that a failed request wrote nothing. */
export async function databaseSnapshot(t: TestDatabase): Promise<string> {
  const { rows } = await sql<{ snapshot: string }>`
    SELECT concat_ws(' | ',
      (SELECT string_agg(q::text, ';' ORDER BY name) FROM holdline.queues q),
      (SELECT string_agg(m::text, ';' ORDER BY id) FROM holdline.messages m),
      (SELECT string_agg(b::text, ';' ORDER BY queue, pattern) FROM holdline.topic_bindings b),
      (SELECT string_agg(s::text, ';' ORDER BY name) FROM holdline.schedules s)
    ) AS snapshot
  `.execute(t.db);
  return rows[0]?.snapshot ?? '';
}

/** Resolves once `check` returns true, checking every few ms; fails after `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** POSTs one operation to `${baseUrl}/graphql` over real HTTP. */
export async function httpRequest<T = JsonObject>(
  baseUrl: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphQLResult<T>> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Omit<GraphQLResult<T>, 'status'>;
  return { status: response.status, ...body };
}
