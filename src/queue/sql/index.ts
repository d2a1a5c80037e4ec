/**
 * The engine's SQL home: every statement that names a holdline.* table, one named statement
 * (Noun+Verb, River style) per export, grouped one file per noun. Only src/queue's operations
 * import it; the SQL functions they call are in migrations/ and, as the migrations leave
 * them, in schema.sql.
 */
export * from './archive.ts';
export * from './dequeue-count.ts';
export * from './health.ts';
export * from './leader.ts';
export * from './message.ts';
export * from './message-bulk.ts';
export * from './queue.ts';
export * from './queue-history.ts';
export * from './replay-job.ts';
export * from './schedule.ts';
export * from './topic-binding.ts';
export * from './waiting-consumer.ts';
export type { StatementClient } from '../../db/statement.ts';
