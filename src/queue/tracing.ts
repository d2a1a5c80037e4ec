/**
 * The engine's OpenTelemetry spans (see src/messaging-spans.ts and docs/tracing.md): a
 * `send <queue>` / `publish <topic>` span around every send made through the engine (GraphQL,
 * the in-process client, transactional sends), whose context is stamped into each message's
 * headers as its creation context; `receive <queue>`, `ack <queue>` and `nack <queue>` spans
 * recorded when those operations answer. Plain SQL sends (holdline.send) make no span and
 * carry no context unless their caller puts one in the headers.
 */
import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import {
  MESSAGING_ATTRIBUTES,
  SpanKind,
  carriesCreationContext,
  creationLinks,
  endSpanWithError,
  startMessagingSpan,
  withCreationContext,
} from '../messaging-spans.ts';
import type { Context, MessagingOperation, Span } from '../messaging-spans.ts';
import { decodeReceipt } from './receipts.ts';
import type { Delivery, SendInput } from './types.ts';

/** What a traced send is: `send` to a queue or `publish` to a topic, one message or a batch. */
export interface SendOperation {
  name: 'send' | 'publish';
  /** The queue, or the topic for publish. */
  destination: string;
  /** A batch API (sendBatch): the span gets `messaging.batch.message_count`. */
  batch: boolean;
}

/**
 * Runs a send inside its span. Each message that does not bring its own creation context
 * gets the span's context in its headers (W3C `traceparent`, `tracestate`; the user's other
 * headers are kept, and a user's own context is never replaced, only linked). The span is
 * PRODUCER when its context became some message's creation context, else CLIENT (every
 * message brought its own). `run` gets the messages to store; `idOf` names the message sent,
 * for single sends. Without an SDK, the messages are passed through untouched.
 */
export async function traceSend<T>(
  operation: SendOperation,
  messages: readonly SendInput[],
  run: (messages: readonly SendInput[]) => Promise<T>,
  idOf?: (result: T) => string,
): Promise<T> {
  // Not an array: validation refuses it inside `run`, with the contract's error.
  const list: unknown = messages;
  if (!Array.isArray(list)) return run(messages);
  const own = messages.filter((m) => carriesCreationContext(m?.headers));
  const span = startMessagingSpan({
    type: 'send',
    name: operation.name,
    destination: operation.destination,
    kind: own.length === messages.length && own.length > 0 ? SpanKind.CLIENT : SpanKind.PRODUCER,
    attributes: operation.batch
      ? { [MESSAGING_ATTRIBUTES.batchMessageCount]: messages.length }
      : undefined,
  });
  if (!isSpanContextValid(span.spanContext())) return run(messages);
  if (own.length > 0 && span.isRecording()) span.addLinks(creationLinks(own.map((m) => m.headers)));
  const stamped = messages.map((m) => stampCreationContext(m, span));
  try {
    const result = await context.with(trace.setSpan(context.active(), span), () => run(stamped));
    if (idOf !== undefined) span.setAttribute(MESSAGING_ATTRIBUTES.messageId, idOf(result));
    span.end();
    return result;
  } catch (error) {
    endSpanWithError(span, error);
    throw error;
  }
}

/** {@link traceSend} of one message: a single send (with its id) or a publish. */
export function traceSendOne<T>(
  name: SendOperation['name'],
  destination: string,
  message: SendInput,
  run: (message: SendInput) => Promise<T>,
  idOf?: (result: T) => string,
): Promise<T> {
  return traceSend({ name, destination, batch: false }, [message], (m) => run(m[0]!), idOf);
}

/** A message with the span's context in its headers (unchanged when it cannot take one). */
function stampCreationContext(message: SendInput, span: Span): SendInput {
  if (message == null || typeof message !== 'object') return message;
  const headers = withCreationContext(message.headers, span);
  return headers === message.headers
    ? message
    : { ...message, headers: headers as SendInput['headers'] };
}

/**
 * Runs a receive and records a `receive <queue>` span (kind CLIENT) from its start to its
 * answer, when it delivered something or failed. An empty receive leaves no span: long polls
 * and subscriptions look again every poll interval, and a span per empty look would bury the
 * deliveries (the `waited` event and /metrics count those). The span links to the creation
 * context of each delivered message and counts them in `messaging.batch.message_count`.
 */
export async function traceReceive(
  queue: string,
  run: () => Promise<Delivery[]>,
): Promise<Delivery[]> {
  const startTime = Date.now();
  const parent = context.active();
  const operation: MessagingOperation = {
    type: 'receive',
    name: 'receive',
    destination: queue,
    kind: SpanKind.CLIENT,
    startTime,
  };
  let deliveries: Delivery[];
  try {
    deliveries = await run();
  } catch (error) {
    endSpanWithError(startMessagingSpan(operation, parent), error);
    throw error;
  }
  if (deliveries.length === 0) return deliveries;
  const span = startMessagingSpan(operation, parent);
  if (span.isRecording()) {
    span.setAttribute(MESSAGING_ATTRIBUTES.batchMessageCount, deliveries.length);
    if (deliveries.length === 1) {
      span.setAttribute(MESSAGING_ATTRIBUTES.messageId, deliveries[0]!.message.id);
    }
    span.addLinks(creationLinks(deliveries.map((d) => d.message.headers)));
  }
  span.end();
  return deliveries;
}

/** What a settlement's span is told of its outcome. */
export interface Settled {
  /** The queues of the settled messages: the span is `<name> <queue>` when there is one. */
  queues: readonly string[];
  /** A nack's outcome (`retried`, `dead_lettered`), recorded as such. */
  nackOutcome?: string;
}

/**
 * Runs an ack or nack of `receipts` and records a settle span (kind CLIENT) from its start
 * to its answer: `ack <queue>`, or `ack` when the batch spans queues or the call failed
 * (LEASE_LOST before the queue is known). A single receipt's message id is recorded; a batch
 * (ackBatch) records its size in `messaging.batch.message_count`.
 */
export async function traceSettle<T>(
  name: 'ack' | 'nack',
  receipts: readonly string[],
  batch: boolean,
  run: () => Promise<T>,
  settled: (result: T) => Settled,
): Promise<T> {
  const startTime = Date.now();
  const parent = context.active();
  let result: T;
  try {
    result = await run();
  } catch (error) {
    endSpanWithError(settleSpan(name, undefined, startTime, parent, receipts, batch), error);
    throw error;
  }
  const outcome = settled(result);
  const span = settleSpan(name, commonQueue(outcome.queues), startTime, parent, receipts, batch);
  if (outcome.nackOutcome !== undefined && span.isRecording()) {
    span.setAttribute(MESSAGING_ATTRIBUTES.nackOutcome, outcome.nackOutcome);
  }
  span.end();
  return result;
}

/** A settle span of `receipts` on `destination` (omitted when unknown), begun at startTime. */
function settleSpan(
  name: 'ack' | 'nack',
  destination: string | undefined,
  startTime: number,
  parent: Context,
  receipts: readonly string[],
  batch: boolean,
): Span {
  const span = startMessagingSpan(
    { type: 'settle', name, destination, kind: SpanKind.CLIENT, startTime },
    parent,
  );
  // Decoding the receipt again is work for the span only.
  if (span.isRecording()) {
    if (batch) span.setAttribute(MESSAGING_ATTRIBUTES.batchMessageCount, receipts.length);
    else span.setAttribute(MESSAGING_ATTRIBUTES.messageId, messageIdOf(receipts[0]));
  }
  return span;
}

/** The one queue all of `queues` name, or undefined when they name several or none. */
function commonQueue(queues: readonly string[]): string | undefined {
  const first = queues[0];
  for (const queue of queues) if (queue !== first) return undefined;
  return first;
}

/** The message id of a receipt, or an empty string for a malformed one. */
function messageIdOf(receipt: string | undefined): string {
  try {
    return decodeReceipt(receipt).messageId;
  } catch {
    return '';
  }
}
