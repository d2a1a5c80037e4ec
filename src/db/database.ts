/**
 * The Kysely type of the database, as far as this layer knows it: nothing. src/db runs
 * statements but names no table; each SQL home (src/queue/sql/tables.ts,
 * src/auth/sql/tables.ts) adds its tables to this interface by declaration merging, so the
 * column types live beside the only SQL that uses them, and a Kysely<Database> in tests
 * still knows every table.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by the SQL homes
export interface Database {}
