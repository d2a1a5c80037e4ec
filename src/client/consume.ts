import { createClient } from './client.ts';
import type { ClientOptions } from './client.ts';
import { HoldlineError } from './errors.ts';
import type { HoldlineClient } from './holdline-client.ts';
import type { ConsumeOptions, MessageHandler, QueueWorker } from './worker.ts';

/** Where {@link consume} gets its messages: a client you made, or a service URL. */
export type ConsumeSource =
  | { client: HoldlineClient }
  | ({ client?: undefined } & Pick<ClientOptions, 'url' | 'token' | 'headers' | 'retry'>);

/**
 * Starts a worker on `queue`: `handler` runs for each message, up to `concurrency` at once,
 * with leases extended while it runs, acks on success and nacks (backoff, dead-lettering)
 * on failure. See {@link QueueWorker} for the guarantees, and stop() it to shut down
 * gracefully. Give `client` (an HTTP or in-process client; closing that client also stops
 * the worker) or `url` (an HTTP client is made for this worker).
 *
 * @example
 * const worker = consume('emails', async (message, { signal }) => {
 *   await sendEmail(message.payload, { signal });
 * }, { url: 'http://localhost:4000', concurrency: 8 });
 * process.on('SIGTERM', () => void worker.stop({ timeoutMs: 10_000 }));
 */
export function consume<Payload = unknown>(
  queue: string,
  handler: MessageHandler<Payload>,
  options: ConsumeOptions & ConsumeSource,
): QueueWorker<Payload> {
  const { client, ...rest } = options;
  if (client !== undefined) return client.consume(queue, handler, rest);
  const { url, token, headers, retry, ...workerOptions } = rest as ConsumeOptions &
    Pick<ClientOptions, 'url' | 'token' | 'headers' | 'retry'>;
  if (typeof url !== 'string') {
    throw new HoldlineError('BAD_USER_INPUT', 'consume needs a client or a url');
  }
  return createClient({ url, token, headers, retry }).consume(queue, handler, workerOptions);
}
