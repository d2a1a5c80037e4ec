import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { toMessage } from './message-row.ts';
import {
  MessageInsert,
  MessageInsertMany,
  MessageInsertManyDeduplicated,
  MessageInsertOneDeduplicated,
  MessagePublish,
} from './sql/index.ts';
import type { Message, SendInput } from './types.ts';
import {
  validateBatch,
  validateQueueName,
  validateSendInput,
  validateTopic,
} from './validation.ts';

/**
 * Enqueues messages into one queue in a single statement, atomically: all or none. With a
 * caller's Transaction as `db` they commit with the caller's data, and waiting consumers are
 * notified only when that transaction commits. Returns one Message per input in input order;
 * an input whose dedupKey a live message of the queue already holds returns that message
 * instead. Fails with QUEUE_NOT_FOUND, PAYLOAD_TOO_LARGE or BAD_USER_INPUT, having written
 * nothing.
 *
 * A batch without dedup keys runs holdline.send_many, which returns only the new ids
 * (migrations/0005), and the Messages are built from the input; with a dedup key the result
 * may hold other, live messages, so that case reads the rows back through send_batch.
 */
export async function sendBatch(
  db: Executor,
  params: { queue: string; messages: readonly SendInput[] },
): Promise<Message[]> {
  const queue = validateQueueName(params.queue);
  validateBatch(params.messages, 'messages');
  const runAts = params.messages.map((m, i) => validateSendInput(m, i));
  if (params.messages.some((m) => m.dedupKey != null)) {
    return sendBatchReadingBack(db, queue, params.messages, runAts);
  }
  const json = JSON.stringify(
    params.messages.map((m, i) => ({
      payload: m.payload,
      run_at: runAts[i],
      priority: m.priority,
      group_key: m.groupKey,
      headers: m.headers,
    })),
  );
  const { rows } = await translated(() => MessageInsertMany.run(db, [queue, json]));
  const { ids } = rows[0]!;
  const createdAt = new Date(rows[0]!.created_at_ms);
  // As stored: what JSON makes of each input (toJSON, dropped undefined).
  const stored = JSON.parse(json) as { payload: unknown; headers?: Record<string, unknown> }[];
  return params.messages.map((m, i) =>
    newMessage(
      ids[i]!,
      queue,
      m,
      stored[i]!.payload,
      stored[i]!.headers,
      runAts[i] ?? null,
      createdAt,
    ),
  );
}

/** sendBatch for a batch with dedup keys: send_batch returns each row sent or found. */
async function sendBatchReadingBack(
  db: Executor,
  queue: string,
  messages: readonly SendInput[],
  runAts: readonly (Date | null)[],
): Promise<Message[]> {
  const { rows } = await translated(() =>
    MessageInsertManyDeduplicated.run(db, [
      queue,
      messages.map((m) => JSON.stringify(m.payload)),
      [...runAts],
      messages.map((m) => m.priority ?? null),
      messages.map((m) => m.dedupKey ?? null),
      messages.map((m) => m.groupKey ?? null),
      messages.map((m) => (m.headers == null ? null : JSON.stringify(m.headers))),
    ]),
  );
  return rows.map((row) => toMessage(row));
}

/** The Message for an input just inserted as `id`: what a read of its row would return. */
function newMessage(
  id: string,
  queue: string,
  input: SendInput,
  payload: unknown,
  headers: Record<string, unknown> | null | undefined,
  runAt: Date | null,
  createdAt: Date,
): Message {
  return toMessage({
    id,
    queue,
    payload,
    headers: headers ?? null,
    priority: input.priority ?? 0,
    run_at: runAt ?? createdAt,
    attempts: 0,
    lease_token: null,
    lease_expires_at: null,
    dedup_key: null,
    group_key: input.groupKey ?? null,
    origin_queue: null,
    last_error: null,
    dead_lettered_at: null,
    created_at: createdAt,
  });
}

/**
 * Enqueues one message; see {@link sendBatch}. The hot path of every producer that sends one
 * message per transaction, so it runs holdline.send_at, which returns only the new id (about
 * a plain INSERT's cost, migrations/0004), and builds the Message from the input. With a
 * dedupKey the result may be another, live message, so that case reads the row back through
 * holdline.send_one (0009). Errors name no position: "the payload is N bytes; …".
 */
export async function send(
  db: Executor,
  params: { queue: string; message: SendInput },
): Promise<Message> {
  const { message } = params;
  const queue = validateQueueName(params.queue);
  const runAt = validateSendInput(message);
  const payloadJson = JSON.stringify(message.payload);
  const headersJson = message.headers == null ? null : JSON.stringify(message.headers);
  const { dedupKey } = message;
  if (dedupKey != null) {
    const { rows } = await translated(() =>
      MessageInsertOneDeduplicated.run(db, [
        queue,
        payloadJson,
        runAt,
        message.priority ?? null,
        dedupKey,
        message.groupKey ?? null,
        headersJson,
      ]),
    );
    return toMessage(rows[0]!);
  }
  const { rows } = await translated(() =>
    MessageInsert.run(db, [
      queue,
      payloadJson,
      runAt,
      message.priority ?? null,
      message.groupKey ?? null,
      headersJson,
    ]),
  );
  const { id } = rows[0]!;
  const createdAt = new Date(rows[0]!.created_at_ms);
  // As stored: what JSON makes of the input (toJSON, dropped undefined).
  return newMessage(
    id,
    queue,
    message,
    JSON.parse(payloadJson) as unknown,
    headersJson === null ? null : (JSON.parse(headersJson) as Record<string, unknown>),
    runAt,
    createdAt,
  );
}

/**
 * Copies one message into every queue bound to a pattern that matches `topic`, all in one
 * transaction (the caller's, when `db` is one). Returns the copies in queue-name order; an
 * unroutable topic returns none.
 */
export async function publish(
  db: Executor,
  params: { topic: string; message: SendInput },
): Promise<Message[]> {
  const topic = validateTopic(params.topic);
  const runAt = validateSendInput(params.message);
  const { message } = params;
  const { rows } = await translated(() =>
    MessagePublish.run(db, [
      topic,
      JSON.stringify(message.payload),
      runAt,
      message.priority ?? null,
      message.dedupKey ?? null,
      message.groupKey ?? null,
      message.headers == null ? null : JSON.stringify(message.headers),
    ]),
  );
  return rows.map((row) => toMessage(row));
}
