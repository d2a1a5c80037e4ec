import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClient } from '../../src/index.ts';
import type { HoldlineClient, Message } from '../../src/index.ts';
import type { App } from '../../src/server/app.ts';
import { countdown, within } from '../client/support.ts';
import { eventually, httpRequest } from '../graphql/harness.ts';
import { startTestApp } from '../helpers/app.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

// A real OpenTelemetry SDK, registered globally as an application would (W3C propagator,
// AsyncLocalStorage context manager), exporting into memory. The service runs in this
// process over real HTTP; the worker talks to it through the HTTP client, so producer and
// consumer spans land in one exporter.
const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

let t: TestDatabase;
let app: App;
let client: HoldlineClient;

beforeAll(async () => {
  provider.register();
  t = await createTestDatabase();
  // The reaper (and replay runner) run often so that replay jobs finish within the tests.
  app = await startTestApp(t, { REAPER_INTERVAL_MS: '50' });
  client = createClient({ url: app.url() });
});
afterAll(async () => {
  await client?.close();
  await app?.stop();
  await t?.drop();
  await provider.shutdown();
});
beforeEach(() => exporter.reset());

const SEND_MUTATION = `mutation Send($queue: String!, $message: SendInput!) {
  send(queue: $queue, message: $message) { id headers } }`;

/** Sends one message with a GraphQL mutation over real HTTP, as any language would. */
async function sendOverGraphql(
  queue: string,
  message: Record<string, unknown>,
  headers?: Record<string, string>,
): Promise<{ id: string; headers: Record<string, unknown> }> {
  const result = await httpRequest<{ send: { id: string; headers: Record<string, unknown> } }>(
    app.url(),
    SEND_MUTATION,
    { queue, message },
    headers,
  );
  expect(result.errors).toBeUndefined();
  return result.data!.send;
}

function spans(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === name);
}
function only(name: string): ReadableSpan {
  const found = spans(name);
  expect(found, `spans named "${name}"`).toHaveLength(1);
  return found[0]!;
}
/** The W3C traceparent of a span, as it is stored in a message's headers. */
function traceparentOf(span: ReadableSpan): string {
  const { traceId, spanId } = span.spanContext();
  return `00-${traceId}-${spanId}-01`;
}
function linkedSpanIds(span: ReadableSpan): string[] {
  return span.links.map((link) => link.context.spanId);
}

/** Runs a worker over HTTP until `count` handler calls have settled; returns their messages. */
async function processWith(
  queue: string,
  count: number,
  handler: (message: Message, call: number) => void,
): Promise<{ message: Message; activeSpanId: string | undefined }[]> {
  const calls: { message: Message; activeSpanId: string | undefined }[] = [];
  const settled = countdown(count);
  const worker = client.consume(
    queue,
    (message) => {
      calls.push({ message, activeSpanId: trace.getActiveSpan()?.spanContext().spanId });
      handler(message, calls.length);
    },
    { waitSeconds: 1, ackDelayMs: 0 },
  );
  worker.on('processed', () => settled.tick());
  worker.on('failed', () => settled.tick());
  try {
    await within(10_000, `${count} handler calls on ${queue}`, settled.done);
  } finally {
    await worker.stop();
  }
  return calls;
}

describe('OpenTelemetry traces', () => {
  it('follows one message from a GraphQL send over HTTP to the worker handler, through a retry', async () => {
    await client.createQueue('orders', { maxAttempts: 3, backoffInitialSeconds: 0 });
    const sent = await sendOverGraphql('orders', {
      payload: { order: 1 },
      headers: { tenant: 'acme' },
    });

    const send = only('send orders');
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.attributes).toEqual({
      'messaging.system': 'holdline',
      'messaging.destination.name': 'orders',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.message.id': sent.id,
    });
    // The send span's context is the message's creation context; the user's header stays.
    expect(sent.headers).toEqual({ tenant: 'acme', traceparent: traceparentOf(send) });

    const calls = await processWith('orders', 2, (_message, call) => {
      if (call === 1) throw new Error('payment service down');
    });
    expect(calls.map((c) => c.message.attempts)).toEqual([1, 2]);
    await eventually(() => spans('ack orders').length === 1, 'the ack span is recorded');

    const processSpans = spans('process orders');
    expect(processSpans).toHaveLength(2);
    for (const [i, span] of processSpans.entries()) {
      expect(span.kind).toBe(SpanKind.CONSUMER);
      // One trace: each delivery's process span is a child of the send span, and links to it.
      expect(span.spanContext().traceId).toBe(send.spanContext().traceId);
      expect(span.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
      expect(linkedSpanIds(span)).toEqual([send.spanContext().spanId]);
      expect(span.attributes).toEqual({
        'messaging.system': 'holdline',
        'messaging.destination.name': 'orders',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.message.id': sent.id,
        'messaging.holdline.message.attempts': i + 1,
        ...(i === 0 ? { 'error.type': 'Error' } : {}),
      });
      // The handler ran inside its process span, so its own spans would be children.
      expect(calls[i]!.activeSpanId).toBe(span.spanContext().spanId);
    }
    expect(processSpans[0]!.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: 'payment service down',
    });
    expect(processSpans[0]!.events.map((e) => e.name)).toEqual(['exception']);
    expect(processSpans[1]!.status.code).toBe(SpanStatusCode.UNSET);

    // The service's side: each receive links to the message's creation context.
    const receives = spans('receive orders');
    expect(receives).toHaveLength(2);
    for (const span of receives) {
      expect(span.kind).toBe(SpanKind.CLIENT);
      expect(linkedSpanIds(span)).toEqual([send.spanContext().spanId]);
      expect(span.attributes).toMatchObject({
        'messaging.operation.type': 'receive',
        'messaging.batch.message_count': 1,
        'messaging.message.id': sent.id,
      });
    }
    const nack = only('nack orders');
    expect(nack.kind).toBe(SpanKind.CLIENT);
    expect(nack.attributes).toMatchObject({
      'messaging.operation.type': 'settle',
      'messaging.operation.name': 'nack',
      'messaging.message.id': sent.id,
      'messaging.holdline.nack.outcome': 'retried',
    });
    // The worker acks through ackBatch: a batch of one.
    expect(only('ack orders').attributes).toMatchObject({
      'messaging.operation.type': 'settle',
      'messaging.operation.name': 'ack',
      'messaging.destination.name': 'orders',
      'messaging.batch.message_count': 1,
    });
  });

  it('keeps the sender trace through dead-lettering and redrive', async () => {
    await client.createQueue('payments', { maxAttempts: 1 });
    const sent = await sendOverGraphql('payments', { payload: { payment: 7 } });
    const send = only('send payments');

    const [delivery] = await client.receive('payments');
    await client.nack(delivery!.receipt, { error: 'card declined' });
    expect(only('nack payments').attributes).toMatchObject({
      'messaging.holdline.nack.outcome': 'dead_lettered',
    });
    const [dead] = await client.receive('payments.dlq');
    expect(dead!.message.headers).toEqual({ traceparent: traceparentOf(send) });
    expect(linkedSpanIds(only('receive payments.dlq'))).toEqual([send.spanContext().spanId]);
    await client.nack(dead!.receipt, { delaySeconds: 0 });

    expect(await client.redrive('payments')).toBe(1);
    await processWith('payments', 1, () => undefined);
    const processed = only('process payments');
    expect(processed.spanContext().traceId).toBe(send.spanContext().traceId);
    expect(processed.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(processed.attributes['messaging.message.id']).toBe(sent.id);
  });

  it('keeps the sender trace in messages replayed from the archive', async () => {
    await client.createQueue('invoices', { archiveSeconds: 3600 });
    await sendOverGraphql('invoices', { payload: { invoice: 3 } });
    const send = only('send invoices');
    await processWith('invoices', 1, () => undefined);

    const job = await client.replay('invoices');
    await eventually(
      async () => (await client.replayJob(job.id))?.state === 'DONE',
      'the replay job is done',
    );
    const calls = await processWith('invoices', 1, () => undefined);
    expect(calls[0]!.message.headers).toMatchObject({ traceparent: traceparentOf(send) });
    const replayed = spans('process invoices').at(-1)!;
    expect(replayed.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(replayed.spanContext().traceId).toBe(send.spanContext().traceId);
  });

  it('joins the trace of a caller whose HTTP request carries a traceparent', async () => {
    await client.createQueue('emails');
    const callerTraceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpanId = '00f067aa0ba902b7';
    await sendOverGraphql(
      'emails',
      { payload: {} },
      { traceparent: `00-${callerTraceId}-${callerSpanId}-01` },
    );
    const send = only('send emails');
    expect(send.spanContext().traceId).toBe(callerTraceId);
    expect(send.parentSpanContext?.spanId).toBe(callerSpanId);
  });

  it('keeps a creation context the sender put in the headers, and links to it', async () => {
    await client.createQueue('audits');
    const own = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const sent = await sendOverGraphql('audits', {
      payload: {},
      headers: { traceparent: own, tracestate: 'vendor=1' },
    });
    expect(sent.headers).toEqual({ traceparent: own, tracestate: 'vendor=1' });
    const send = only('send audits');
    // Its context is not the creation context: CLIENT, not PRODUCER.
    expect(send.kind).toBe(SpanKind.CLIENT);
    expect(linkedSpanIds(send)).toEqual(['b7ad6b7169203331']);

    await processWith('audits', 1, () => undefined);
    const processed = only('process audits');
    expect(processed.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(processed.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
  });

  it('adds its traceparent without overwriting a header the sender set', async () => {
    await client.createQueue('notes');
    // Neither a tracestate alone nor a traceparent that is no string is a creation context:
    // the send's own would be added, but never over a header the sender set.
    const sent = await sendOverGraphql('notes', {
      payload: {},
      headers: { tracestate: 'mine=1', traceparent: 7 },
    });
    expect(sent.headers).toEqual({ tracestate: 'mine=1', traceparent: 7 });
    const [plain] = await client.sendBatch('notes', [
      { payload: {}, headers: { tracestate: 'x=2' } },
    ]);
    const batchSpan = spans('send notes').at(-1)!;
    expect(plain!.headers).toEqual({ tracestate: 'x=2', traceparent: traceparentOf(batchSpan) });
  });

  it('traces a batch as one send span whose context every message carries', async () => {
    await client.createQueue('batch');
    const messages = await client.sendBatch('batch', [
      { payload: 1 },
      { payload: 2, headers: { kind: 'x' } },
    ]);
    const send = only('send batch');
    expect(send.attributes).toMatchObject({ 'messaging.batch.message_count': 2 });
    expect(send.attributes['messaging.message.id']).toBeUndefined();
    expect(messages.map((m) => m.headers)).toEqual([
      { traceparent: traceparentOf(send) },
      { kind: 'x', traceparent: traceparentOf(send) },
    ]);
  });

  it('traces sends inside an engine transaction and publishes to a topic', async () => {
    await client.createQueue('ledger');
    await client.bindQueue('ledger', 'ledger.*');
    const inTransaction = await app.engine.transaction((tx) =>
      tx.send('ledger', { payload: { entry: 1 } }),
    );
    expect(inTransaction.headers).toEqual({ traceparent: traceparentOf(only('send ledger')) });

    const [copy] = await client.publish('ledger.created', { payload: { entry: 2 } });
    const publish = only('publish ledger.created');
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(publish.attributes).toMatchObject({
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'publish',
      'messaging.destination.name': 'ledger.created',
    });
    expect(copy!.headers).toEqual({ traceparent: traceparentOf(publish) });
  });

  it('marks a failed send with the contract code and stores nothing', async () => {
    const result = await httpRequest(app.url(), SEND_MUTATION, {
      queue: 'missing',
      message: { payload: {} },
    });
    expect(result.errors?.[0]?.extensions?.code).toBe('QUEUE_NOT_FOUND');
    const send = only('send missing');
    expect(send.status.code).toBe(SpanStatusCode.ERROR);
    expect(send.attributes['error.type']).toBe('QUEUE_NOT_FOUND');
  });
});
