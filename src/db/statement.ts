import { CompiledQuery } from 'kysely';
import type { Kysely, QueryResult } from 'kysely';
import type { Database } from './database.ts';
import { markPrepared } from './prepared-statements.ts';

/** Where a statement runs: the pool-backed Kysely, or a caller's Transaction (a Kysely too). */
export type StatementExecutor = Kysely<Database>;

/** A bare pg connection a statement may run on too (the LISTEN connection, a lock session). */
export interface StatementClient {
  query(text: string, values: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

/** Options of {@link Statement}. */
export interface StatementOptions {
  /**
   * A hot statement (a send, receive, ack, nack or lease extension): run as a named
   * prepared statement on pools that allow it (src/db/prepared-statements.ts). Default false:
   * administration and maintenance run unnamed.
   */
  prepared?: boolean;
}

/**
 * One named SQL statement of an SQL home (src/queue/sql/, src/auth/sql/): its text fixed
 * once, with $n placeholders, run with each call's parameters (River's Noun+Verb queries,
 * graphile-worker's one file per statement). Fixed text skips kysely's compiler on every
 * call (profiled: about a tenth of the engine's Node CPU per single send), lets a hot
 * statement be prepared, and keeps every statement readable in one place. Lists travel as
 * array parameters, so the text never varies; values never enter the text.
 *
 * `Row` is a result row; `Params` the positional parameters, $1 first. Failures are the
 * driver's own: the SQL home's callers translate them.
 */
export class Statement<Row, Params extends readonly unknown[] = unknown[]> {
  /** The statement's name (Noun+Verb), for reading and for logs. */
  readonly name: string;
  readonly text: string;

  constructor(name: string, text: string, options: StatementOptions = {}) {
    this.name = name;
    this.text = text;
    if (options.prepared === true) markPrepared(text);
  }

  /** Runs the statement on `db` (the pool, or a caller's Transaction). */
  run(db: StatementExecutor, params: Params): Promise<QueryResult<Row>> {
    return db.executeQuery<Row>(CompiledQuery.raw(this.text, params as unknown as unknown[]));
  }

  /** Runs the statement on a bare pg connection (never prepared there). */
  async runOn(client: StatementClient, params: Params): Promise<Row[]> {
    const { rows } = await client.query(this.text, [...params]);
    return rows as Row[];
  }
}
