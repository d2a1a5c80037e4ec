import { QueueMaintenance } from '../queue/index.ts';
import type { Executor } from '../queue/index.ts';

/**
 * Dead row versions in the messages table above which the reaper vacuums it itself. Each
 * message leaves two (its lease rewrites the row, its ack deletes it), so at 1,000 messages
 * a second this is about ten seconds of traffic.
 */
export const VACUUM_DEAD_TUPLES_DEFAULT = 20_000;

/** What {@link vacuumMessagesIfBehind} found and did. */
export interface VacuumCheck {
  deadTuples: number;
  vacuumed: boolean;
}

/**
 * Vacuums the messages table when its dead row versions reach `deadTuplesThreshold` and no
 * vacuum of it is running.
 *
 * Why a queue vacuums its own table: its rows live seconds, so dead versions pile up at the
 * rate of the traffic, and every receive walks past the dead index entries at the head of
 * the queue until a vacuum removes them. The table's autovacuum settings (migrations/0001)
 * ask for that, but autovacuum may be off (it is on some managed and test servers), or wake
 * only once a naptime (a minute by default) while the table grows by more than that. Measured
 * with autovacuum off, 1,000 messages a second grew the table by 25 MiB a minute
 * (bench/soak.ts). Where autovacuum keeps up, the count stays below the threshold and this
 * does nothing.
 *
 * SKIP_LOCKED: a vacuum that cannot get the table's lock at once (autovacuum holds it) is
 * skipped, not queued. A role that does not own the table gets PostgreSQL's warning and no
 * vacuum. Needs a connection outside any transaction.
 */
export async function vacuumMessagesIfBehind(
  db: Executor | QueueMaintenance,
  deadTuplesThreshold: number,
): Promise<VacuumCheck> {
  const maintenance = db instanceof QueueMaintenance ? db : new QueueMaintenance(db);
  const { deadTuples, vacuumRunning } = await maintenance.messageTableVacuumState();
  if (deadTuples < deadTuplesThreshold || vacuumRunning) {
    return { deadTuples, vacuumed: false };
  }
  await maintenance.vacuumMessageTable();
  return { deadTuples, vacuumed: true };
}
