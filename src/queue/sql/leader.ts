/** The maintainer's leader lock: a session advisory lock held by one process at a time. */
import { Statement } from '../../db/statement.ts';

/** Tries to take session advisory lock ($1, $2) without waiting. */
export const LeaderLockTry = new Statement<{ locked: boolean }, [namespace: number, key: number]>(
  'LeaderLockTry',
  `SELECT pg_try_advisory_lock($1::int, $2::int) AS locked`,
);
