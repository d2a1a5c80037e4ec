/**
 * OpenTelemetry spans of messaging operations, named and attributed by the OpenTelemetry
 * semantic conventions for messaging spans (docs/tracing.md says which version), and the
 * message creation context carried in a message's headers. Shared by the engine (send,
 * receive, settle) and the worker (process), which is why it sits outside both modules.
 *
 * Everything goes through `@opentelemetry/api` only: without an SDK registered by the
 * application, the tracer is the API's no-op, a span is a NonRecordingSpan with an invalid
 * context, the propagator injects nothing, and no header is added to any message.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  isSpanContextValid,
  propagation,
  trace,
} from '@opentelemetry/api';
import type { Attributes, Context, Link, Span, TextMapGetter, Tracer } from '@opentelemetry/api';

export { SpanKind };
export type { Context, Span };

/** `messaging.system` of every span: the conventions' name for the messaging system. */
export const MESSAGING_SYSTEM = 'holdline';

/** The instrumentation scope of Holdline's spans (what `trace.getTracer` is asked for). */
export const TRACER_NAME = 'holdline';

/** The attribute names used, as the conventions spell them; the last two are Holdline's own. */
export const MESSAGING_ATTRIBUTES = {
  system: 'messaging.system',
  destinationName: 'messaging.destination.name',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  messageId: 'messaging.message.id',
  batchMessageCount: 'messaging.batch.message_count',
  errorType: 'error.type',
  /** Deliveries of the message so far, this one included (1 on the first). */
  attempts: 'messaging.holdline.message.attempts',
  /** What a nack did: `retried` or `dead_lettered`. */
  nackOutcome: 'messaging.holdline.nack.outcome',
} as const;

/** `messaging.operation.type`: the conventions' operation types that Holdline has. */
export type MessagingOperationType = 'send' | 'receive' | 'process' | 'settle';

/** One messaging operation, as a span describes it. */
export interface MessagingOperation {
  type: MessagingOperationType;
  /** `messaging.operation.name`: send, publish, receive, process, ack, nack. */
  name: string;
  /** The queue (or, for publish, the topic); the span is `<name> <destination>`, or `<name>`. */
  destination?: string;
  kind: SpanKind;
  attributes?: Attributes;
  /** When the operation began (ms since the epoch), for spans recorded once it answered. */
  startTime?: number;
}

// The API's global ProxyTracer: a no-op until an SDK registers a tracer provider, the SDK's
// tracer from then on. Kept at module scope like any instrumentation's tracer: it holds no
// resource, and looking it up per span would allocate a proxy per operation.
const tracer: Tracer = trace.getTracer(TRACER_NAME);

/** Starts a span for `operation` under `parent` (default: the active context). */
export function startMessagingSpan(
  operation: MessagingOperation,
  parent: Context = context.active(),
): Span {
  const { name, destination } = operation;
  const attributes: Attributes = {
    [MESSAGING_ATTRIBUTES.system]: MESSAGING_SYSTEM,
    [MESSAGING_ATTRIBUTES.operationType]: operation.type,
    [MESSAGING_ATTRIBUTES.operationName]: name,
    ...operation.attributes,
  };
  if (destination !== undefined) attributes[MESSAGING_ATTRIBUTES.destinationName] = destination;
  return tracer.startSpan(
    destination === undefined ? name : `${name} ${destination}`,
    { kind: operation.kind, attributes, startTime: operation.startTime },
    parent,
  );
}

/**
 * Ends a span of a failed operation: status ERROR with the error's message, and `error.type`
 * the error's contract code (QUEUE_NOT_FOUND, LEASE_LOST, …) when it has one, else its name.
 */
export function endSpanWithError(span: Span, error: unknown): void {
  if (span.isRecording()) {
    span.setAttribute(MESSAGING_ATTRIBUTES.errorType, errorType(error));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
  }
  span.end();
}

/** A low-cardinality name for an error: its code when it carries a string one, else its name. */
function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const { code } = error as { code?: unknown };
    if (typeof code === 'string' && code !== '') return code;
    if (error instanceof Error) return error.name;
  }
  return '_OTHER';
}

/** Reads string-valued headers only: a header the user set to a number is no context. */
const HEADER_GETTER: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = Object.hasOwn(carrier, key) ? carrier[key] : undefined;
    return typeof value === 'string' ? value : undefined;
  },
};

/**
 * The creation context a message's headers carry (W3C `traceparent`/`tracestate` with the
 * default propagator), or undefined when they carry none or no SDK has set a propagator.
 */
export function creationContextOf(
  headers: Readonly<Record<string, unknown>> | null | undefined,
): Context | undefined {
  if (headers == null) return undefined;
  const extracted = propagation.extract(ROOT_CONTEXT, headers, HEADER_GETTER);
  const spanContext = trace.getSpanContext(extracted);
  return spanContext !== undefined && isSpanContextValid(spanContext) ? extracted : undefined;
}

/** A link to each creation context among `headers` (for receive, process and send spans). */
export function creationLinks(
  headers: Iterable<Readonly<Record<string, unknown>> | null | undefined>,
): Link[] {
  const links: Link[] = [];
  for (const h of headers) {
    const creation = creationContextOf(h);
    if (creation !== undefined) links.push({ context: trace.getSpanContext(creation)! });
  }
  return links;
}

/**
 * True when `headers` already carry a creation context the propagator can read (the sender
 * set its own `traceparent`), which the conventions say must not be changed. Always false
 * without an SDK (the no-op propagator reads nothing).
 */
export function carriesCreationContext(headers: unknown): boolean {
  if (headers == null || typeof headers !== 'object' || Array.isArray(headers)) return false;
  return creationContextOf(headers as Record<string, unknown>) !== undefined;
}

/**
 * The headers with `span`'s context added as the message's creation context, or `headers`
 * themselves when the span's context is invalid (no SDK), when they are not a JSON object
 * (validation refuses them later) or when they carry a creation context already. A header
 * the user set is never overwritten, even one the propagator would write.
 */
export function withCreationContext(headers: unknown, span: Span): unknown {
  if (!isSpanContextValid(span.spanContext())) return headers;
  if (headers != null && (typeof headers !== 'object' || Array.isArray(headers))) return headers;
  if (carriesCreationContext(headers)) return headers;
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
  return { ...carrier, ...(headers as Record<string, unknown> | null | undefined) };
}

/** What {@link processMessage} needs of a delivered message. */
export interface ProcessedMessage {
  id: string;
  queue: string;
  attempts: number;
  headers: Readonly<Record<string, unknown>> | null;
}

/**
 * Runs a consumer's handler for one message inside a `process <queue>` span (kind
 * CONSUMER). The span's parent is the message's creation context, so every delivery of a
 * message (retries, after dead-lettering, redrive or replay, which keep the headers) joins
 * the sender's trace; it links to that context as well, as the conventions ask. A message
 * without one starts a new trace: the worker loop's ambient context is whoever started the
 * worker, not a cause of this message. The span ends when the handler settles; a throw
 * sets status ERROR and is rethrown.
 */
export async function processMessage<T>(message: ProcessedMessage, handler: () => T): Promise<T> {
  const creation = creationContextOf(message.headers);
  const parent = creation ?? ROOT_CONTEXT;
  const span = startMessagingSpan(
    {
      type: 'process',
      name: 'process',
      destination: message.queue,
      kind: SpanKind.CONSUMER,
      attributes: {
        [MESSAGING_ATTRIBUTES.messageId]: message.id,
        [MESSAGING_ATTRIBUTES.attempts]: message.attempts,
      },
    },
    parent,
  );
  if (creation !== undefined && span.isRecording()) {
    span.addLink({ context: trace.getSpanContext(creation)! });
  }
  // Without an SDK the span is a no-op: the handler runs as it would untraced.
  const run = isSpanContextValid(span.spanContext())
    ? () => context.with(trace.setSpan(parent, span), handler)
    : handler;
  try {
    const result = await run();
    span.end();
    return result;
  } catch (error) {
    if (span.isRecording() && error instanceof Error) span.recordException(error);
    endSpanWithError(span, error);
    throw error;
  }
}
