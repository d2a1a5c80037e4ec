/**
 * Flow control: a queue in front of a partner API that allows 4 calls at once and 10 per
 * second, fed by an hourly cron schedule, and a look at why a message is waiting.
 *
 *   npm start                           # in another terminal
 *   npx tsx examples/flow-control.ts    # HOLDLINE_URL for another service
 *
 * In your own project, import from 'holdline' instead of '../src/index.ts'.
 */
import { createClient, isHoldlineError } from '../src/index.ts';

const client = createClient({ url: process.env.HOLDLINE_URL ?? 'http://localhost:4000' });
const queue = 'partner-api';

try {
  // Never more than 4 leased at once, and at most 10 deliveries per second, across every
  // consumer and service instance.
  await client.createQueue(queue, { maxInFlight: 4, rateLimit: { count: 10, perSeconds: 1 } });
} catch (error) {
  if (!isHoldlineError(error, 'QUEUE_EXISTS')) throw error;
}

try {
  // One sync job at the start of every hour, Berlin time; a tick missed while nothing ran
  // is fired once when the service is back (LATEST).
  const schedule = await client.createSchedule({
    name: 'partner-sync',
    cron: '0 * * * *',
    timezone: 'Europe/Berlin',
    queue,
    message: { payload: { job: 'sync' } },
    catchUp: 'LATEST',
  });
  console.log(`schedule "${schedule.name}" fires next at ${schedule.nextTickAt.toISOString()}`);
} catch (error) {
  if (!isHoldlineError(error, 'SCHEDULE_EXISTS')) throw error;
}

// Five calls queued, four taken by a consumer that is still working on them: the cap is full.
const sent = await client.sendBatch(
  queue,
  Array.from({ length: 5 }, (_, i) => ({ payload: { call: i } })),
);
const held = await client.receive(queue, { max: 5 });
const fifth = await client.getMessage(sent[4]!.id);
console.log(
  `leased ${held.length}; message ${fifth?.id} waits: ${fifth?.waitingReason}, ${fifth?.position} ahead`,
);
await client.ackBatch(held.map((d) => d.receipt));
await client.close();
