/**
 * The `holdline` package: `import { createClient, consume, send } from 'holdline'`.
 * - createClient: typed GraphQL/HTTP client of a Holdline service;
 * - createInProcessClient: the same over a pg pool in this process (no HTTP hop);
 * - consume / QueueWorker: the worker loop over either;
 * - send / sendBatch / publish: enqueue inside your own transaction (kysely or pg);
 * - QueueEngine and the engine's error type, for code that embeds the engine itself.
 * The service itself is started with `npx holdline serve` (see docs/operations.md).
 */
export * from './client/index.ts';
export { EngineTransport } from './server/engine-transport.ts';
export { createInProcessClient } from './server/in-process.ts';
export type { InProcessClient, InProcessClientOptions } from './server/in-process.ts';
export { publish, send, sendBatch, transactionSender } from './server/transactional.ts';
export type { TransactionSender, TransactionTarget } from './server/transactional.ts';
export { QueueEngine, QueueError } from './queue/index.ts';
export type {
  Executor,
  QueueEngineEvents,
  QueueEngineOptions,
  QueueErrorCode,
} from './queue/index.ts';
