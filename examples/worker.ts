/**
 * Worker: handles the "emails" queue of a running Holdline service, four at a time, until
 * Ctrl-C (SIGINT) or SIGTERM, then stops gracefully.
 *
 *   npm start                       # in another terminal
 *   npx tsx examples/worker.ts      # then run examples/producer.ts
 *
 * In your own project, import from 'holdline' instead of '../src/index.ts'.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { consume, createClient, isHoldlineError } from '../src/index.ts';

interface WelcomeEmail {
  to: string;
  subject: string;
}

const client = createClient({ url: process.env.HOLDLINE_URL ?? 'http://localhost:4000' });
try {
  await client.createQueue('emails', { maxAttempts: 3 });
} catch (error) {
  if (!isHoldlineError(error, 'QUEUE_EXISTS')) throw error;
}

const worker = consume<WelcomeEmail>(
  'emails',
  async (message, { signal }) => {
    // Stands in for a call to a mail API; pass `signal` so it stops if the lease is lost.
    await sleep(20, undefined, { signal });
    console.log(`emailed ${message.payload.to} (attempt ${message.attempts})`);
  },
  { client, concurrency: 4 },
);
worker.on('failed', ({ delivery, error }) =>
  console.error(`message ${delivery.message.id} failed: ${String(error)}`),
);
worker.on('workerError', ({ operation, error }) =>
  console.error(`${operation} failed: ${String(error)}`),
);
console.log('worker started; Ctrl-C to stop');

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void worker.stop({ timeoutMs: 10_000 }).then(() => {
      console.log('worker stopped');
      process.exit(0);
    });
  });
}
