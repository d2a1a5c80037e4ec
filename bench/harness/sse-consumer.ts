/**
 * A consumer of the service's GraphQL `deliveries` subscription over Server-Sent Events (a
 * POST to /graphql with `Accept: text/event-stream`, read from fetch's body stream, as a
 * client without a WebSocket library would), acking every delivery with its own HTTP `ack`
 * mutation: the SSE path of bench/push.ts.
 */
import { createClient } from '../../src/client/index.ts';
import { GraphQLResultError, withRateLimitRetries } from './rate-limit.ts';
import type { RateLimitCounts } from './rate-limit.ts';

const DELIVERIES_SUBSCRIPTION = `
  subscription Deliveries($queue: String!, $prefetch: Int) {
    deliveries(queue: $queue, prefetch: $prefetch) { receipt message { payload } }
  }`;

/** How long stop() waits for acks held up by the rate limit before giving up on them. */
const ACK_DRAIN_TIMEOUT_MS = 5_000;

/** Options of {@link startSseConsumer}. */
export interface SseConsumerOptions {
  /** The service: http://127.0.0.1:<port>. */
  serviceUrl: string;
  queue: string;
  /** Unacked deliveries the service may hand out at once (the subscription's prefetch). */
  prefetch: number;
  /** The handler: called with each delivery's payload as it arrives, before its ack. */
  onPayload: (payload: unknown) => void;
  /** A bearer token, sent as the Authorization header of the stream and of every ack. */
  token?: string;
  /**
   * Most ack requests in flight at once; the rest wait their turn in arrival order. Each is
   * one request on fetch's keep-alive connections.
   */
  acksInFlight: number;
}

/** A running SSE consumer. */
export interface SseConsumer {
  /** Deliveries acked so far. */
  readonly acked: number;
  /** ack requests made so far (a refused one counts once per attempt). */
  readonly ackCalls: number;
  /** ack requests refused by the token's rate limit (each retried after its Retry-After). */
  readonly rateLimited: number;
  /** Waits for the acks queued or in flight, then closes; rethrows a failure of the stream or an ack. */
  stop(): Promise<void>;
}

/** One ack request per receipt, at most `inFlight` at once, in arrival order. */
class AckEach implements RateLimitCounts {
  acked = 0;
  calls = 0;
  rateLimited = 0;
  private readonly waiting: string[] = [];
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly ack: (receipt: string) => Promise<boolean>,
    private readonly inFlight: number,
    private readonly onError: (error: unknown) => void,
    private readonly giveUp: AbortSignal,
  ) {}

  add(receipt: string): void {
    this.waiting.push(receipt);
    this.pump();
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
  }

  private pump(): void {
    while (this.running.size < this.inFlight && this.waiting.length > 0) {
      const receipt = this.waiting.shift()!;
      const acking: Promise<void> = withRateLimitRetries(
        () => {
          this.calls++;
          return this.ack(receipt);
        },
        this,
        this.giveUp,
      )
        .then(
          (acked) => {
            if (acked) this.acked++;
          },
          (error: unknown) => {
            // Given up on at stop() while the rate limit held it back: not a failure of
            // the stream; the lease runs out and the message comes again.
            if (!this.giveUp.aborted) this.onError(error);
          },
        )
        .finally(() => {
          this.running.delete(acking);
          this.pump();
        });
      this.running.add(acking);
    }
  }
}

/** An SSE event: its `event:` field (default `message`) and its `data:` lines joined. */
interface ServerSentEvent {
  event: string;
  data: string;
}

/** Parses one event block (the lines between blank lines); comments (`:` …) are skipped. */
function parseEvent(block: string): ServerSentEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    // One space after the colon belongs to the syntax, not the value (the SSE standard).
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length === 0 ? undefined : { event, data: data.join('\n') };
}

/** Reads an event stream, calling `onEvent` for each event, until the body ends. */
async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  onEvent: (event: ServerSentEvent) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let end = buffer.indexOf('\n\n');
    while (end !== -1) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event !== undefined) onEvent(event);
      end = buffer.indexOf('\n\n');
    }
  }
}

/**
 * Subscribes to `deliveries(queue, prefetch)` over SSE and acks each delivery with its own
 * `ack(receipt)` request after calling `onPayload`. Resolves once the service has answered
 * with an event stream (a refusal, e.g. UNAUTHENTICATED, rejects); a caller that needs the
 * subscription in place waits for it (e.g. for the queue's row in holdline.waiting_consumers).
 */
export async function startSseConsumer(options: SseConsumerOptions): Promise<SseConsumer> {
  let failure: { error: unknown } | undefined;
  let stopping = false;
  const fail = (error: unknown): void => {
    failure ??= { error };
  };
  const authorization: Record<string, string> =
    options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
  // Retries off: a refusal by the rate limit reaches AckEach, which counts it and waits the
  // Retry-After the service names.
  const http = createClient({
    url: options.serviceUrl,
    token: options.token,
    retry: { retries: 0 },
  });
  const giveUp = new AbortController();
  const acks = new AckEach(
    (receipt) => http.ack(receipt),
    options.acksInFlight,
    fail,
    giveUp.signal,
  );
  const closing = new AbortController();
  const response = await fetch(`${options.serviceUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authorization },
    body: JSON.stringify({
      query: DELIVERIES_SUBSCRIPTION,
      variables: { queue: options.queue, prefetch: options.prefetch },
    }),
    signal: closing.signal,
  });
  const body = response.body;
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !body) {
    // A refusal before the stream started comes back as a plain GraphQL response.
    const text = await response.text();
    throw new Error(`deliveries over SSE: ${response.status} ${text.slice(0, 500)}`);
  }
  const reader = body.getReader();
  const reading = readEvents(reader, (event) => {
    if (event.event === 'complete') return;
    if (event.event !== 'next') return;
    const result = JSON.parse(event.data) as {
      data?: { deliveries?: { receipt: string; message: { payload: unknown } } };
      errors?: { message?: string; extensions?: Record<string, unknown> }[];
    };
    const delivery = result.data?.deliveries;
    if (result.errors !== undefined || delivery === undefined) {
      fail(new GraphQLResultError('deliveries', result.errors ?? []));
      return;
    }
    options.onPayload(delivery.message.payload);
    acks.add(delivery.receipt);
  }).then(
    () => {
      if (!stopping) fail(new Error('the deliveries stream ended while the consumer ran'));
    },
    (error: unknown) => {
      if (!stopping) fail(error);
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
      closing.abort();
      await reading;
      await http.close();
      if (failure !== undefined) throw failure.error;
    },
  };
}
