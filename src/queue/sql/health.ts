/** The statement behind the service's readiness check. */
import { Statement } from '../../db/statement.ts';

/** Answers when the database does. */
export const DatabasePing = new Statement<{ one: number }, []>('DatabasePing', `SELECT 1 AS one`);
