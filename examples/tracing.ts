/**
 * Tracing: one order followed from the code that sends it to the worker that handles it (and
 * fails once, so the retry shows too), printed by the OpenTelemetry SDK's console exporter.
 * Holdline only uses `@opentelemetry/api`; installing and registering an SDK, as here, turns
 * its spans on (docs/tracing.md).
 *
 *   npm install @opentelemetry/sdk-trace-node @opentelemetry/sdk-trace-base   # your project
 *   npm start                              # in another terminal (or any migrated database)
 *   npx tsx examples/tracing.ts            # DATABASE_URL for your own PostgreSQL
 *
 * Without DATABASE_URL it uses the embedded PostgreSQL that `npm start` runs. In your own
 * project, import from 'holdline' instead of '../src/index.ts'.
 */
import { trace } from '@opentelemetry/api';
import { ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { createInProcessClient, isHoldlineError } from '../src/index.ts';

// Registered before any span is made: the tracer provider, the W3C trace-context propagator
// (traceparent in the message headers) and an AsyncLocalStorage context manager.
const provider = new NodeTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())],
});
provider.register();

const QUEUE = 'traced-orders';
const holdline = await createInProcessClient({
  connectionString:
    process.env.DATABASE_URL ?? 'postgres://postgres:holdline@127.0.0.1:5433/postgres',
});
try {
  await holdline.createQueue(QUEUE, { maxAttempts: 3, backoffInitialSeconds: 0 });
} catch (error) {
  if (!isHoldlineError(error, 'QUEUE_EXISTS')) throw error;
}
await holdline.purge(QUEUE);

// The application's own span: the send inside it becomes its child, and the message carries
// the send's context to the worker.
const tracer = trace.getTracer('shop');
const orderTrace = await tracer.startActiveSpan('place order', async (span) => {
  const message = await holdline.send(QUEUE, { payload: { order: 42 } });
  console.log(`sent message ${message.id} with headers ${JSON.stringify(message.headers)}`);
  span.end();
  return span.spanContext().traceId;
});

let attempts = 0;
let handled!: () => void;
const done = new Promise<void>((resolve) => (handled = resolve));
const worker = holdline.consume(QUEUE, (message) => {
  attempts++;
  const handlerTrace = trace.getActiveSpan()?.spanContext().traceId;
  console.log(
    `attempt ${message.attempts} runs in the order's trace: ${handlerTrace === orderTrace}`,
  );
  if (attempts === 1) throw new Error('warehouse busy');
  handled();
});
await done;
await worker.stop();
await holdline.close();
await provider.shutdown();
console.log(`trace ${orderTrace}: place order → send → process (failed) → process`);
