/**
 * The engine's statements on holdline.waiting_consumers: which LISTEN connections have a
 * consumer idle-waiting on which queue, so a send NOTIFYs only then (holdline.wake, 0002).
 */
import { Statement } from '../../db/statement.ts';

/** Registers listener pid $2 as waiting on queue $1. */
export const WaitingConsumerInsert = new Statement<never, [queue: string, listenerPid: number]>(
  'WaitingConsumerInsert',
  `INSERT INTO holdline.waiting_consumers (queue, listener_pid) VALUES ($1, $2)
   ON CONFLICT DO NOTHING`,
);

/** Unregisters listener pid $2 from queue $1. */
export const WaitingConsumerDelete = new Statement<never, [queue: string, listenerPid: number]>(
  'WaitingConsumerDelete',
  `DELETE FROM holdline.waiting_consumers WHERE queue = $1 AND listener_pid = $2`,
);

/** Unregisters listener pid $1 from every queue. */
export const WaitingConsumerDeleteByListener = new Statement<never, [listenerPid: number]>(
  'WaitingConsumerDeleteByListener',
  `DELETE FROM holdline.waiting_consumers WHERE listener_pid = $1`,
);

/** Unregisters every listener from queue $1 (the queue is being deleted). */
export const WaitingConsumerDeleteByQueue = new Statement<never, [queue: string]>(
  'WaitingConsumerDeleteByQueue',
  `DELETE FROM holdline.waiting_consumers WHERE queue = $1`,
);

/** Deletes registrations of backends that are gone (a crashed process's). */
export const WaitingConsumerDeleteStale = new Statement<never, []>(
  'WaitingConsumerDeleteStale',
  `
  DELETE FROM holdline.waiting_consumers w
  WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.listener_pid)`,
);
