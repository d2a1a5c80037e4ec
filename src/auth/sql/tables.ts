import type { ColumnType } from 'kysely';

/** Column types of auth's table in schema `holdline` (see schema.sql). */
declare module '../../db/database.ts' {
  interface Database {
    'holdline.api_tokens': ApiTokensTable;
  }
}

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface ApiTokensTable {
  /** bigint: pg returns it as a string. */
  id: ColumnType<string, never, never>;
  name: string;
  /** SHA-256 of the secret; the secret itself is never stored. */
  secret_hash: Buffer;
  scopes: string[];
  created_at: Timestamp;
  revoked_at: Date | null;
  last_used_at: Date | null;
}
