import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.ts';
import { SQLSTATE, sqlState } from '../db/pg-errors.ts';
import { TokenError } from './errors.ts';
import { formatScope, parseScopes } from './scopes.ts';
import {
  ApiTokenGetLiveBySecretHash,
  ApiTokenInsert,
  ApiTokenList,
  ApiTokenRevokeByName,
  ApiTokenTouch,
} from './sql/api-token.ts';
import type { ApiTokenRow } from './sql/api-token.ts';

/** What every secret starts with, so a leaked one is recognisable (secret scanners, logs). */
export const SECRET_PREFIX = 'hl_';

/** Random bytes in a secret: 256 bits, beyond any guessing (see migration 0003). */
const SECRET_BYTES = 32;

/** `hl_` and 43 base64url characters: the only shape worth a database lookup. */
const SECRET_PATTERN = /^hl_[A-Za-z0-9_-]{43}$/;

/** Token names: as queue names, 1 to 128 letters, digits, `_ . -`. */
const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/** A token as listed: never its secret, which is not stored. */
export interface ApiToken {
  id: string;
  name: string;
  /** Canonical scope strings, e.g. `send:orders.*`, `admin`. */
  scopes: string[];
  createdAt: Date;
  /** When it was revoked; null while it is live. */
  revokedAt: Date | null;
  /** When it last authenticated a request, to within a minute; null if never. */
  lastUsedAt: Date | null;
}

/** What {@link createToken} returns: the token and its secret, which exists only here. */
export interface CreatedToken {
  token: ApiToken;
  /** `hl_…`: shown once; only its SHA-256 is stored, so it cannot be recovered later. */
  secret: string;
}

/** SHA-256 of a secret, as stored in the tokens table's secret_hash. */
export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Whether `secret` has the shape of a Holdline secret (says nothing of whether it is valid). */
export function looksLikeSecret(secret: string): boolean {
  return SECRET_PATTERN.test(secret);
}

function toApiToken(row: ApiTokenRow): ApiToken {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}

/**
 * Issues a token named `name` with `scopes` (see parseScopes: a comma-separated string or a
 * list). Returns the secret, which is never stored or shown again. Fails with TokenError
 * BAD_USER_INPUT for a bad name or scope, and TOKEN_EXISTS when a live token has the name
 * (revoke it first to rotate). One statement; joins the caller's transaction if given one.
 */
export async function createToken(
  db: Kysely<Database>,
  params: { name: string; scopes: string | readonly string[] },
): Promise<CreatedToken> {
  if (!NAME_PATTERN.test(params.name)) {
    throw new TokenError(
      'BAD_USER_INPUT',
      "a token name is 1 to 128 letters, digits, '_', '.' or '-'",
    );
  }
  const scopes = parseScopes(params.scopes).map(formatScope);
  const secret = SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64url');
  try {
    const { rows } = await ApiTokenInsert.run(db, [params.name, hashSecret(secret), scopes]);
    return { token: toApiToken(rows[0]!), secret };
  } catch (error) {
    if (sqlState(error) === SQLSTATE.uniqueViolation) {
      throw new TokenError(
        'TOKEN_EXISTS',
        `a live token is named "${params.name}": revoke it first, or pick another name`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Revokes the live token named `name`: from then on it authenticates nothing (services that
 * cached it notice within their cache time, one second by default). Returns false when no
 * live token has that name. The row is kept, with revoked_at set.
 */
export async function revokeToken(
  db: Kysely<Database>,
  params: { name: string },
): Promise<boolean> {
  const result = await ApiTokenRevokeByName.run(db, [params.name]);
  return (result.numAffectedRows ?? 0n) > 0n;
}

/** Every token, live ones first, each group by name; revoked ones only when asked for. */
export async function listTokens(
  db: Kysely<Database>,
  params: { includeRevoked?: boolean } = {},
): Promise<ApiToken[]> {
  const { rows } = await ApiTokenList.run(db, [params.includeRevoked === true]);
  return rows.map(toApiToken);
}

/**
 * The live token whose secret this is, or undefined (malformed, unknown or revoked). Looks
 * up by the secret's hash through the unique index on secret_hash: a request never compares
 * secrets one by one, and a lookup's timing tells nothing about any stored secret (an
 * attacker would need a SHA-256 preimage to steer it).
 */
export async function findTokenBySecret(
  db: Kysely<Database>,
  params: { secret: string },
): Promise<ApiToken | undefined> {
  if (!looksLikeSecret(params.secret)) return undefined;
  const { rows } = await ApiTokenGetLiveBySecretHash.run(db, [hashSecret(params.secret)]);
  const row = rows[0];
  return row === undefined ? undefined : toApiToken(row);
}

/** Sets a token's last_used_at to now. */
export async function touchToken(db: Kysely<Database>, params: { id: string }): Promise<void> {
  await ApiTokenTouch.run(db, [params.id]);
}
