import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { AccessControl, createToken } from '../../src/auth/index.ts';
import { requestIdOf } from '../../src/graphql/context.ts';
import { attachWebSocketServer } from '../../src/graphql/schema.ts';
import type { GraphQLHandlerOptions } from '../../src/graphql/schema.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { silentLogger } from '../helpers/factories.ts';
import { startService } from '../graphql/harness.ts';
import { readEvents } from '../graphql/transports.ts';
import type {
  GraphQLErrorJson,
  GraphQLResult,
  GraphQLService,
  JsonObject,
} from '../graphql/harness.ts';

/** A service with authentication on, served in-process and over a real HTTP server. */
export interface SecureService {
  api: GraphQLService;
  control: AccessControl;
  /** http://127.0.0.1:port, for SSE and WebSocket. */
  baseUrl: string;
  /** Runs one operation over HTTP (a JSON POST) with `Authorization: Bearer <secret>`. */
  request<T = JsonObject>(
    secret: string | undefined,
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<GraphQLResult<T> & { headers: Headers }>;
  /** Runs one operation and fails unless it has data and no errors. */
  ok<T = JsonObject>(
    secret: string,
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<T>;
  /** Creates a token; returns its secret. */
  token(name: string, scopes: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts an engine and a GraphQL handler with `auth` on the test database (the graphql
 * harness), an HTTP server for SSE, and WebSockets attached to it.
 */
export async function startSecureService(
  t: TestDatabase,
  options: Partial<Omit<GraphQLHandlerOptions, 'engine' | 'auth'>> & {
    rateLimit?: { perSecond: number; burst: number };
    cacheMs?: number;
    pollIntervalMs?: number;
    bulkChunkSize?: number;
  } = {},
): Promise<SecureService> {
  const { rateLimit, cacheMs, ...handlerOptions } = options;
  const control = new AccessControl({ db: t.db, logger: silentLogger(), cacheMs });
  const api = await startService(t, { ...handlerOptions, auth: { control, rateLimit } });
  // handler.serve, as the service mounts it: programs' JSON POSTs take the lean path
  // (json-post.ts), the rest goes through yoga.
  const server = http.createServer(
    (req, res) => void api.handler.serve(req, res, { requestId: requestIdOf(req) }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const disposeWebSockets = attachWebSocketServer(api.handler.yoga, server);
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const request = async <T>(
    secret: string | undefined,
    query: string,
    variables?: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Promise<GraphQLResult<T> & { headers: Headers }> => {
    const response = await fetch(`${baseUrl}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        ...(secret === undefined ? {} : { authorization: `Bearer ${secret}` }),
        ...headers,
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as Omit<GraphQLResult<T>, 'status'>;
    return { status: response.status, headers: response.headers, ...body };
  };

  return {
    api,
    control,
    baseUrl,
    request,
    async ok<T>(secret: string, query: string, variables?: Record<string, unknown>): Promise<T> {
      const result = await request<T>(secret, query, variables);
      if (result.errors !== undefined || result.data == null) {
        throw new Error(`expected data, got ${JSON.stringify(result)}`);
      }
      return result.data;
    },
    async token(name: string, scopes: string): Promise<string> {
      return (await createToken(t.db, { name, scopes })).secret;
    },
    async stop() {
      await disposeWebSockets();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await api.stop();
    },
  };
}

/** The code of the only error of a result; fails unless there is exactly one. */
export function onlyErrorCode(result: { errors?: GraphQLErrorJson[] }): string | undefined {
  if (result.errors?.length !== 1) {
    throw new Error(`expected one error, got ${JSON.stringify(result)}`);
  }
  return result.errors[0]!.extensions?.code;
}

/** One subscription opened with a token, over SSE or WebSocket. */
export interface TokenSubscription {
  /** The next result (data or errors); fails after `timeoutMs` or when the stream ended. */
  next(timeoutMs?: number): Promise<{ data?: JsonObject | null; errors?: GraphQLErrorJson[] }>;
  /** Resolves when the stream has ended, however it ended. */
  ended(): Promise<void>;
  /** HTTP status of the SSE response; undefined over WebSocket. */
  status?: number;
  /** Close code and reason when the server closed the WebSocket. */
  closed?: { code: number; reason: string };
  close(): Promise<void>;
}

/** Results of a stream, taken one by one. */
class Results {
  private readonly items: { data?: JsonObject | null; errors?: GraphQLErrorJson[] }[] = [];
  private readonly waiters: (() => void)[] = [];
  done = false;
  private readonly finished: Promise<void>;
  private finish!: () => void;

  constructor() {
    this.finished = new Promise((resolve) => (this.finish = resolve));
  }

  push(item: { data?: JsonObject | null; errors?: GraphQLErrorJson[] }): void {
    this.items.push(item);
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  end(): void {
    this.done = true;
    this.finish();
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  ended(): Promise<void> {
    return this.finished;
  }

  async take(
    timeoutMs: number,
  ): Promise<{ data?: JsonObject | null; errors?: GraphQLErrorJson[] }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) return item;
      if (this.done) throw new Error('the subscription ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no subscription result within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** Subscribes over SSE (POST, Accept: text/event-stream) with an Authorization header. */
export async function subscribeSse(
  baseUrl: string,
  secret: string | undefined,
  query: string,
  variables?: Record<string, unknown>,
): Promise<TokenSubscription> {
  const controller = new AbortController();
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      ...(secret === undefined ? {} : { authorization: `Bearer ${secret}` }),
    },
    body: JSON.stringify({ query, variables }),
    signal: controller.signal,
  });
  const results = new Results();
  const contentType = response.headers.get('content-type') ?? '';
  let reading: Promise<void> = Promise.resolve();
  const reader = response.body?.getReader();
  if (!contentType.includes('text/event-stream') || reader === undefined) {
    // Refused before the stream started: a plain GraphQL response.
    results.push((await response.json()) as { errors?: GraphQLErrorJson[] });
    results.end();
  } else {
    reading = readEvents(reader, (event, data) => {
      if (event === 'next') results.push(JSON.parse(data) as { errors?: GraphQLErrorJson[] });
      if (event === 'complete') results.end();
    })
      .catch(() => undefined)
      .finally(() => results.end());
  }
  return {
    status: response.status,
    next: (timeoutMs = 5_000) => results.take(timeoutMs),
    ended: () => results.ended(),
    async close() {
      controller.abort();
      await reader?.cancel().catch(() => undefined);
      await reading;
    },
  };
}

/**
 * Subscribes over WebSocket (graphql-ws) with the token in connectionParams, as a browser
 * would send it; `via: 'header'` sends it as the upgrade's Authorization header instead.
 */
export function subscribeWs(
  baseUrl: string,
  secret: string | undefined,
  query: string,
  variables?: Record<string, unknown>,
  via: 'connectionParams' | 'header' = 'connectionParams',
): TokenSubscription {
  const authorization = secret === undefined ? undefined : `Bearer ${secret}`;
  const results = new Results();
  const subscription: TokenSubscription = {
    next: (timeoutMs = 5_000) => results.take(timeoutMs),
    ended: () => results.ended(),
    async close() {
      await client.dispose();
    },
  };
  class HeaderWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, authorization === undefined ? {} : { headers: { authorization } });
    }
  }
  const client = createClient({
    url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: via === 'header' ? HeaderWebSocket : WebSocket,
    retryAttempts: 0,
    connectionParams:
      via === 'connectionParams' && authorization !== undefined ? { authorization } : undefined,
    on: {
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string | Buffer };
        subscription.closed = { code, reason: String(reason) };
        results.end();
      },
    },
  });
  client.subscribe(
    { query, variables },
    {
      next: (value) =>
        results.push(value as { data?: JsonObject | null; errors?: GraphQLErrorJson[] }),
      error: (error) => {
        if (Array.isArray(error)) results.push({ errors: error as GraphQLErrorJson[] });
        results.end();
      },
      complete: () => results.end(),
    },
  );
  return subscription;
}
