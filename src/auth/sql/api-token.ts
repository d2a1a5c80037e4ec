/**
 * Auth's SQL home: every statement on holdline.api_tokens, one named statement each (Noun +
 * Verb). Tokens are not the queue engine's domain (src/auth sits on src/db only, and the CLI
 * manages tokens with no engine), so they keep their own home beside the engine's
 * (src/queue/sql/); nothing else in src/auth names the table.
 */
import type { Selectable } from 'kysely';
import type { ApiTokensTable } from './tables.ts';
import { Statement } from '../../db/statement.ts';

/** A row of holdline.api_tokens. */
export type ApiTokenRow = Selectable<ApiTokensTable>;

/** Inserts a token; a live token with the same name fails with unique_violation. */
export const ApiTokenInsert = new Statement<
  ApiTokenRow,
  [name: string, secretHash: Buffer, scopes: string[]]
>(
  'ApiTokenInsert',
  `INSERT INTO holdline.api_tokens (name, secret_hash, scopes) VALUES ($1, $2, $3::text[])
   RETURNING *`,
);

/** Revokes the live token named $1; rowCount 0 when there is none. */
export const ApiTokenRevokeByName = new Statement<never, [name: string]>(
  'ApiTokenRevokeByName',
  `UPDATE holdline.api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL`,
);

/** Tokens, live ones first, each group by name; revoked ones only when $1 is true. */
export const ApiTokenList = new Statement<ApiTokenRow, [includeRevoked: boolean]>(
  'ApiTokenList',
  `
  SELECT * FROM holdline.api_tokens
  WHERE $1::boolean OR revoked_at IS NULL
  ORDER BY revoked_at IS NOT NULL, name, id`,
);

/** The live token with secret hash $1 (the unique index on secret_hash), or no row. */
export const ApiTokenGetLiveBySecretHash = new Statement<ApiTokenRow, [secretHash: Buffer]>(
  'ApiTokenGetLiveBySecretHash',
  `SELECT * FROM holdline.api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL`,
);

/** The live token with id $1 (re-checks of a cached principal), or no row. */
export const ApiTokenGetLiveById = new Statement<
  Pick<ApiTokenRow, 'id' | 'name' | 'scopes'>,
  [id: string]
>(
  'ApiTokenGetLiveById',
  `SELECT id, name, scopes FROM holdline.api_tokens WHERE id = $1::bigint AND revoked_at IS NULL`,
);

/** Sets token $1's last_used_at to now. */
export const ApiTokenTouch = new Statement<never, [id: string]>(
  'ApiTokenTouch',
  `UPDATE holdline.api_tokens SET last_used_at = now() WHERE id = $1::bigint`,
);
