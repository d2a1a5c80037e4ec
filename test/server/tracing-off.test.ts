import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/index.ts';
import type { HoldlineClient } from '../../src/index.ts';
import type { App } from '../../src/server/app.ts';
import { deferred, within } from '../client/support.ts';
import { httpRequest } from '../graphql/harness.ts';
import { startTestApp } from '../helpers/app.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

// No OpenTelemetry SDK in this file's process: the API stays the no-op it is for users who
// install none (tracing.test.ts has the SDK).
let t: TestDatabase;
let app: App;
let client: HoldlineClient;

beforeAll(async () => {
  t = await createTestDatabase();
  app = await startTestApp(t);
  client = createClient({ url: app.url() });
});
afterAll(async () => {
  await client?.close();
  await app?.stop();
  await t?.drop();
});

describe('OpenTelemetry without an SDK', () => {
  it('stores headers as sent and runs handlers with no span, even for a traceparent request', async () => {
    await client.createQueue('plain');
    const result = await httpRequest<{ send: { headers: unknown } }>(
      app.url(),
      `mutation { send(queue: "plain", message: { payload: 1, headers: { a: "b" } }) { headers } }`,
      undefined,
      { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    );
    expect(result.data?.send.headers).toEqual({ a: 'b' });
    const [batched] = await client.sendBatch('plain', [{ payload: 2 }]);
    expect(batched!.headers).toBeNull();

    const handled = deferred<{ headers: unknown; span: unknown }>();
    const worker = client.consume('plain', (message) => {
      if (message.payload === 2)
        handled.resolve({ headers: message.headers, span: trace.getActiveSpan() });
    });
    const seen = await within(10_000, 'the second message handled', handled.promise);
    await worker.stop();
    expect(seen).toEqual({ headers: null, span: undefined });
  });
});
