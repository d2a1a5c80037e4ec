/**
 * A consumer of the service's GraphQL `deliveries` subscription over WebSocket (graphql-ws,
 * as a client in another process would use it), acking through the HTTP client (the
 * subscription path of bench/latency.ts and bench/soak.ts) or with ackBatch mutations on the
 * same socket (bench/push.ts), with or without a token.
 */
import { createClient as createWebSocketClient } from 'graphql-ws';
import type { Client as WebSocketClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createClient } from '../../src/client/index.ts';
import { GraphQLResultError, withRateLimitRetries } from './rate-limit.ts';
import type { RateLimitCounts } from './rate-limit.ts';

/** The contract's most receipts per ackBatch call. */
const ACK_BATCH_MAX = 1000;

const DELIVERIES_SUBSCRIPTION = `
  subscription Deliveries($queue: String!, $prefetch: Int) {
    deliveries(queue: $queue, prefetch: $prefetch) { receipt message { payload } }
  }`;

const ACK_BATCH_MUTATION = `
  mutation AckBatch($receipts: [String!]!) { ackBatch(receipts: $receipts) }`;

/** How long stop() waits for acks held up by the rate limit before giving up on them. */
const ACK_DRAIN_TIMEOUT_MS = 5_000;

interface DeliveriesResult {
  deliveries: { receipt: string; message: { payload: unknown } };
}

/** Options of {@link startSubscriptionConsumer}. */
export interface SubscriptionConsumerOptions {
  /** The service: http://127.0.0.1:<port>. */
  serviceUrl: string;
  queue: string;
  /** Unacked deliveries the service may hand out at once (the subscription's prefetch). */
  prefetch: number;
  /** The handler: called with each delivery's payload as it arrives, before its ack. */
  onPayload: (payload: unknown) => void;
  /**
   * A bearer token: sent as connectionParams `authorization: "Bearer …"` on the socket and
   * as the Authorization header of HTTP acks. Default none (a service without
   * authentication).
   */
  token?: string;
  /**
   * Where the ackBatch calls go: `http` (the HTTP client, default) or `websocket` (mutation
   * operations on the subscription's own socket, as graphql-ws allows).
   */
  acks?: 'http' | 'websocket';
}

/** A running subscription consumer. */
export interface SubscriptionConsumer {
  /** Deliveries acked so far. */
  readonly acked: number;
  /** ackBatch calls made so far (a refused one counts once per attempt). */
  readonly ackCalls: number;
  /** ackBatch calls refused by the token's rate limit (each retried after its Retry-After). */
  readonly rateLimited: number;
  /** Waits for the acks in flight, then closes; rethrows a failure of the stream or an ack. */
  stop(): Promise<void>;
}

/**
 * Acks in batches without a timer: the first receipt goes out at once, and the ones that
 * arrive while an ackBatch call is in flight go together in the next, so a busy stream
 * makes few calls and an idle one acks without delay.
 */
class AckPipeline implements RateLimitCounts {
  acked = 0;
  calls = 0;
  rateLimited = 0;
  private pending: string[] = [];
  private flushing: Promise<void> | undefined;

  /**
   * `ackBatch` makes one call; a RATE_LIMITED refusal is retried after its Retry-After
   * (counted in `rateLimited`) until `giveUp` aborts, any other failure goes to `onError`.
   */
  constructor(
    private readonly ackBatch: (receipts: string[]) => Promise<number>,
    private readonly onError: (error: unknown) => void,
    private readonly giveUp: AbortSignal,
  ) {}

  add(receipt: string): void {
    this.pending.push(receipt);
    this.flushing ??= this.flush();
  }

  async drain(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, ACK_BATCH_MAX);
      try {
        const acked = await withRateLimitRetries(
          () => {
            this.calls++;
            return this.ackBatch(batch);
          },
          this,
          this.giveUp,
        );
        this.acked += acked;
      } catch (error) {
        // Given up on at stop() while the rate limit held it back: not a failure of the
        // stream; the leases run out and the messages come again.
        if (!this.giveUp.aborted) this.onError(error);
      }
    }
    this.flushing = undefined;
  }
}

/**
 * Subscribes to `deliveries(queue, prefetch)` on the service and acks each delivery after
 * calling `onPayload`. The subscription starts at once; a caller that needs it in place
 * waits for it (e.g. for the queue's row in holdline.waiting_consumers).
 */
export function startSubscriptionConsumer(
  options: SubscriptionConsumerOptions,
): SubscriptionConsumer {
  let failure: { error: unknown } | undefined;
  let stopping = false;
  const fail = (error: unknown): void => {
    failure ??= { error };
  };
  const authorization = options.token === undefined ? undefined : `Bearer ${options.token}`;
  // The client's own retries stay as shipped, as latency.ts and soak.ts always had them: a
  // refusal by the rate limit reaches the pipeline only once those are used up.
  const http = createClient({ url: options.serviceUrl, token: options.token });
  const socket = createWebSocketClient({
    url: `${options.serviceUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: authorization === undefined ? undefined : { authorization },
  });
  const giveUp = new AbortController();
  const acks = new AckPipeline(
    options.acks === 'websocket'
      ? (receipts) => ackBatchOnSocket(socket, receipts)
      : (receipts) => http.ackBatch(receipts),
    fail,
    giveUp.signal,
  );
  const unsubscribe = socket.subscribe<DeliveriesResult>(
    {
      query: DELIVERIES_SUBSCRIPTION,
      variables: { queue: options.queue, prefetch: options.prefetch },
    },
    {
      next: (result) => {
        const delivery = result.data?.deliveries;
        if (result.errors !== undefined || delivery === undefined) {
          fail(new Error(`deliveries: ${JSON.stringify(result.errors ?? result)}`));
          return;
        }
        options.onPayload(delivery.message.payload);
        acks.add(delivery.receipt);
      },
      error: fail,
      complete: () => {
        if (!stopping) fail(new Error('the deliveries stream ended while the consumer ran'));
      },
    },
  );
  return {
    get acked() {
      return acks.acked;
    },
    get ackCalls() {
      return acks.calls;
    },
    get rateLimited() {
      return acks.rateLimited;
    },
    async stop() {
      stopping = true;
      const timer = setTimeout(() => giveUp.abort(), ACK_DRAIN_TIMEOUT_MS);
      await acks.drain();
      clearTimeout(timer);
      unsubscribe();
      await socket.dispose();
      await http.close();
      if (failure !== undefined) throw failure.error;
    },
  };
}

/**
 * One ackBatch mutation as an operation on the subscription's socket; resolves with how many
 * were acked. A refusal before execution (the rate limit, in graphql-ws's onSubscribe) comes
 * as the sink's error list, a resolver's error as the result's errors: both reject with a
 * {@link GraphQLResultError}.
 */
function ackBatchOnSocket(socket: WebSocketClient, receipts: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    let acked: number | undefined;
    socket.subscribe<{ ackBatch: number }>(
      { query: ACK_BATCH_MUTATION, variables: { receipts } },
      {
        next: (result) => {
          if (result.errors !== undefined || typeof result.data?.ackBatch !== 'number') {
            reject(new GraphQLResultError('ackBatch', result.errors ?? []));
            return;
          }
          acked = result.data.ackBatch;
        },
        error: (error: unknown) => {
          // A list of GraphQL errors when the operation was refused; else the socket's
          // failure (a CloseEvent or an Error).
          reject(
            Array.isArray(error)
              ? new GraphQLResultError('ackBatch', error as { message?: string }[])
              : error instanceof Error
                ? error
                : new Error(`ackBatch: the socket failed (${describeSocketFailure(error)})`),
          );
        },
        complete: () => {
          if (acked !== undefined) resolve(acked);
          else reject(new Error('ackBatch: the operation completed without a result'));
        },
      },
    );
  });
}

/** A graphql-ws sink failure that is not an Error: a CloseEvent's code and reason. */
function describeSocketFailure(failure: unknown): string {
  const { code, reason } = (failure ?? {}) as { code?: unknown; reason?: unknown };
  return `close code ${typeof code === 'number' ? code : 'unknown'}${
    typeof reason === 'string' && reason !== '' ? `: ${reason}` : ''
  }`;
}
