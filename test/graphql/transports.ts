import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { GraphQLResult, JsonObject } from './harness.ts';

/** One subscription as a client holds it. */
export interface ClientSubscription<T = JsonObject> {
  /** The next result; fails after `timeoutMs` or when the stream ended first. */
  next(timeoutMs?: number): Promise<Omit<GraphQLResult<T>, 'status'>>;
  /** Results that arrived and were not taken by next() yet. */
  readonly buffered: number;
  /** True once the server completed (or failed) the stream. */
  readonly ended: boolean;
  /** Goes away as a client would: closes the connection. */
  close(): Promise<void>;
}

/** How a test opens subscriptions: over SSE or over WebSocket. */
export interface Transport {
  name: 'sse' | 'ws';
  subscribe<T = JsonObject>(
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<ClientSubscription<T>>;
}

const NEXT_TIMEOUT_MS_DEFAULT = 5_000;

/** A queue of results with waiters, fed by a transport. */
class ResultQueue<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((item: T | undefined) => void)[] = [];
  ended = false;

  push(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(item);
    else this.items.push(item);
  }

  end(): void {
    this.ended = true;
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  get size(): number {
    return this.items.length;
  }

  async take(timeoutMs: number): Promise<T> {
    const ready = this.items.shift();
    if (ready !== undefined) return ready;
    if (this.ended) throw new Error('the subscription ended');
    let timer: NodeJS.Timeout | undefined;
    const item = await new Promise<T | undefined>((resolve, reject) => {
      const waiter = (value: T | undefined): void => {
        clearTimeout(timer);
        resolve(value);
      };
      this.waiters.push(waiter);
      timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no subscription result within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    if (item === undefined) throw new Error('the subscription ended');
    return item;
  }
}

/** GraphQL subscriptions over Server-Sent Events: a POST with Accept: text/event-stream. */
export function sseTransport(baseUrl: string): Transport {
  return {
    name: 'sse',
    async subscribe<T>(query: string, variables?: Record<string, unknown>) {
      const controller = new AbortController();
      const response = await fetch(`${baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ query, variables }),
        signal: controller.signal,
      });
      const results = new ResultQueue<Omit<GraphQLResult<T>, 'status'>>();
      const contentType = response.headers.get('content-type') ?? '';
      if (!contentType.includes('text/event-stream')) {
        // An error before the stream started comes back as a plain response.
        results.push((await response.json()) as Omit<GraphQLResult<T>, 'status'>);
        results.end();
      }
      const reader = response.body?.getReader();
      const reading =
        contentType.includes('text/event-stream') && reader !== undefined
          ? readEvents(reader, (event, data) => {
              if (event === 'next') results.push(JSON.parse(data) as GraphQLResult<T>);
              if (event === 'complete') results.end();
            })
              .catch(() => undefined)
              .finally(() => results.end())
          : Promise.resolve();
      return {
        next: (timeoutMs = NEXT_TIMEOUT_MS_DEFAULT) => results.take(timeoutMs),
        get buffered() {
          return results.size;
        },
        get ended() {
          return results.ended;
        },
        async close() {
          controller.abort();
          // An abort racing the server's own end of the body can leave a read pending in
          // undici; cancelling the reader settles it either way.
          await reader?.cancel().catch(() => undefined);
          await reading;
        },
      };
    },
  };
}

/** Reads an SSE body, calling `onEvent` for each event with its data. */
export async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  onEvent: (event: string, data: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      // ':' lines are keep-alive comments: no event.
      if (data.length > 0 || event !== 'message') onEvent(event, data.join('\n'));
      end = buffer.indexOf('\n\n');
    }
  }
}

/** GraphQL subscriptions over WebSocket, graphql-ws client on the `ws` package (Node 20). */
export function wsTransport(baseUrl: string): Transport {
  return {
    name: 'ws',
    subscribe<T>(query: string, variables?: Record<string, unknown>) {
      const client = createClient({
        url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        retryAttempts: 0,
      });
      const results = new ResultQueue<Omit<GraphQLResult<T>, 'status'>>();
      client.subscribe<T>(
        { query, variables },
        {
          next: (value) => results.push(value as Omit<GraphQLResult<T>, 'status'>),
          error: (error) => {
            // A GraphQL error list (the operation failed) is a result; a socket error ends it.
            if (Array.isArray(error)) results.push({ errors: error as GraphQLResult['errors'] });
            results.end();
          },
          complete: () => results.end(),
        },
      );
      return Promise.resolve({
        next: (timeoutMs = NEXT_TIMEOUT_MS_DEFAULT) => results.take(timeoutMs),
        get buffered() {
          return results.size;
        },
        get ended() {
          return results.ended;
        },
        async close() {
          await client.dispose();
        },
      });
    },
  };
}
