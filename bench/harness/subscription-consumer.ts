/**
 * A consumer of the service's GraphQL `deliveries` subscription over WebSocket (graphql-ws,
 * as a client in another process would use it), acking through the HTTP client: the
 * subscription path of bench/latency.ts and bench/soak.ts.
 */
import { createClient as createWebSocketClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createClient } from '../../src/client/index.ts';

/** The contract's most receipts per ackBatch call. */
const ACK_BATCH_MAX = 1000;

const DELIVERIES_SUBSCRIPTION = `
  subscription Deliveries($queue: String!, $prefetch: Int) {
    deliveries(queue: $queue, prefetch: $prefetch) { receipt message { payload } }
  }`;

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
}

/** A running subscription consumer. */
export interface SubscriptionConsumer {
  /** Deliveries acked so far. */
  readonly acked: number;
  /** Waits for the acks in flight, then closes; rethrows a failure of the stream or an ack. */
  stop(): Promise<void>;
}

/**
 * Acks in batches without a timer: the first receipt goes out at once, and the ones that
 * arrive while an ackBatch call is in flight go together in the next, so a busy stream
 * makes few calls and an idle one acks without delay.
 */
class AckPipeline {
  acked = 0;
  private pending: string[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly ackBatch: (receipts: string[]) => Promise<number>,
    private readonly onError: (error: unknown) => void,
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
        this.acked += await this.ackBatch(batch);
      } catch (error) {
        this.onError(error);
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
  const http = createClient({ url: options.serviceUrl });
  const acks = new AckPipeline((receipts) => http.ackBatch(receipts), fail);
  const socket = createWebSocketClient({
    url: `${options.serviceUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
  });
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
    async stop() {
      stopping = true;
      await acks.drain();
      unsubscribe();
      await socket.dispose();
      await http.close();
      if (failure !== undefined) throw failure.error;
    },
  };
}
