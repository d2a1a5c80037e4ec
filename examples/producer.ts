/**
 * Producer: sends welcome emails to the "emails" queue of a running Holdline service.
 *
 *   npm start                       # in another terminal
 *   npx tsx examples/producer.ts    # COUNT=100 for more; HOLDLINE_URL for another service
 *
 * In your own project, import from 'holdline' instead of '../src/index.ts'.
 */
import { createClient, isHoldlineError } from '../src/index.ts';

const client = createClient({ url: process.env.HOLDLINE_URL ?? 'http://localhost:4000' });
const count = Number(process.env.COUNT ?? '10');

try {
  await client.createQueue('emails', { maxAttempts: 3 });
} catch (error) {
  // Queues are created once; a second run finds it there.
  if (!isHoldlineError(error, 'QUEUE_EXISTS')) throw error;
}

const runId = Date.now().toString(36);
const sent = await client.sendBatch(
  'emails',
  Array.from({ length: count }, (_, i) => ({
    payload: { to: `user${i}@example.com`, subject: 'Welcome!' },
    // With a dedupKey the client may safely retry a send whose answer was lost.
    dedupKey: `welcome-${runId}-${i}`,
  })),
);
console.log(`sent ${sent.length} messages to "emails" (ids ${sent[0]?.id}…${sent.at(-1)?.id})`);

const stats = await client.queueStats('emails');
console.log(
  `queue "emails": ${stats?.ready} ready, ${stats?.leased} leased, ${stats?.delayed} delayed`,
);
