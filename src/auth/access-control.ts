import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import {
  hashSecret,
  findTokenBySecret,
  looksLikeSecret,
  revokeToken,
  touchToken,
} from './tokens.ts';
import { ScopeSet, parseScopes } from './scopes.ts';
import { ApiTokenGetLiveById } from './sql/api-token.ts';

/** How long a token lookup is reused: the longest a revocation elsewhere goes unnoticed. */
export const TOKEN_CACHE_MS_DEFAULT = 1_000;

/** Each instance writes a token's last_used_at at most this often. */
export const LAST_USED_INTERVAL_MS = 60_000;

/** Most token lookups kept; past this the oldest are dropped (bounds memory under junk tokens). */
const CACHE_ENTRIES_MAX = 10_000;

/** Who a request acts as: an authenticated, live token. */
export interface Principal {
  tokenId: string;
  /** The token's name, for logs (never the secret). */
  name: string;
  scopes: ScopeSet;
  /** Hex SHA-256 of the secret: the cache key for re-checks. Not usable as a credential. */
  readonly secretHash: string;
}

/** Options of {@link AccessControl}. */
export interface AccessControlOptions {
  db: Kysely<Database>;
  logger: Logger;
  /** How long a lookup is reused, in ms. Default {@link TOKEN_CACHE_MS_DEFAULT}; 0: never. */
  cacheMs?: number;
}

interface CacheEntry {
  expiresAt: number;
  principal: Promise<Principal | undefined>;
}

/**
 * Authentication for one service process: token lookups, cached.
 *
 * A token lookup (hit or miss) is reused for `cacheMs` (1 s by default), so a busy token
 * costs one indexed query a second rather than one per request, and a revocation made by
 * another process (the CLI, another instance) takes effect everywhere within that second.
 * A revocation made through {@link revoke} empties the cache and takes effect here at once.
 * Failed lookups (database errors) are not cached.
 *
 * Construct in server/app.ts and hand to createGraphQLHandler; no state at module scope.
 */
export class AccessControl {
  private readonly db: Kysely<Database>;
  private readonly logger: Logger;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly touchedAt = new Map<string, number>();

  constructor(options: AccessControlOptions) {
    this.db = options.db;
    this.logger = options.logger;
    this.cacheMs = options.cacheMs ?? TOKEN_CACHE_MS_DEFAULT;
  }

  /**
   * The principal of a live token with this secret, or undefined (malformed, unknown or
   * revoked). Rejects only when the database cannot answer.
   */
  authenticate(secret: string): Promise<Principal | undefined> {
    // Junk never reaches the database, nor the cache.
    if (!looksLikeSecret(secret)) return Promise.resolve(undefined);
    const secretHash = hashSecret(secret).toString('hex');
    return this.lookup(secretHash, () => this.load(secret, secretHash));
  }

  /**
   * Whether the principal's token is still live (not revoked), as of at most `cacheMs` ago.
   * Long-lived subscriptions call this before each event they push.
   */
  async isLive(principal: Principal): Promise<boolean> {
    const current = await this.lookup(principal.secretHash, () =>
      this.loadById(principal.tokenId, principal.secretHash),
    );
    return current !== undefined;
  }

  /**
   * Revokes the live token named `name` (see revokeToken) and forgets every cached lookup,
   * so this process refuses the token from the next request on. False when no live token
   * has the name.
   */
  async revoke(name: string): Promise<boolean> {
    const revoked = await revokeToken(this.db, { name });
    this.forget();
    return revoked;
  }

  /** Drops every cached lookup: the next request of every token reads the database. */
  forget(): void {
    this.cache.clear();
  }

  private lookup(
    secretHash: string,
    load: () => Promise<Principal | undefined>,
  ): Promise<Principal | undefined> {
    const now = Date.now();
    const cached = this.cache.get(secretHash);
    if (cached !== undefined && cached.expiresAt > now) return cached.principal;
    const principal = load();
    if (this.cacheMs > 0) {
      this.cache.delete(secretHash);
      if (this.cache.size >= CACHE_ENTRIES_MAX) {
        // Maps iterate in insertion order: the first key is the oldest entry.
        const oldest = this.cache.keys().next();
        if (oldest.done !== true) this.cache.delete(oldest.value);
      }
      const entry = { expiresAt: now + this.cacheMs, principal };
      this.cache.set(secretHash, entry);
      void principal.catch(() => {
        if (this.cache.get(secretHash) === entry) this.cache.delete(secretHash);
      });
    }
    return principal;
  }

  private async load(secret: string, secretHash: string): Promise<Principal | undefined> {
    const token = await findTokenBySecret(this.db, { secret });
    return token === undefined ? undefined : this.principalOf(token, secretHash);
  }

  private async loadById(tokenId: string, secretHash: string): Promise<Principal | undefined> {
    const { rows } = await ApiTokenGetLiveById.run(this.db, [tokenId]);
    const token = rows[0];
    return token === undefined ? undefined : this.principalOf(token, secretHash);
  }

  private principalOf(
    token: { id: string; name: string; scopes: string[] },
    secretHash: string,
  ): Principal | undefined {
    let scopes: ScopeSet;
    try {
      scopes = new ScopeSet(parseScopes(token.scopes));
    } catch (error) {
      // Only a hand-edited row gets here (the table's CHECK refuses bad scopes): no access.
      this.logger.warn({ err: error, token: token.name }, 'token has unreadable scopes');
      return undefined;
    }
    this.touch(token.id);
    return { tokenId: token.id, name: token.name, scopes, secretHash };
  }

  /**
   * Records use, off the request path and at most once a minute per token: a write per
   * request would double the cost of every send.
   */
  private touch(tokenId: string): void {
    const now = Date.now();
    if (now - (this.touchedAt.get(tokenId) ?? -Infinity) < LAST_USED_INTERVAL_MS) return;
    this.touchedAt.set(tokenId, now);
    touchToken(this.db, { id: tokenId }).catch((error: unknown) => {
      this.logger.warn({ err: error, tokenId }, 'token last_used_at not written');
    });
  }
}
