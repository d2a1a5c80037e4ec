/**
 * API tokens and what they allow: token management over the database (createToken,
 * revokeToken, listTokens), scope parsing and matching, the AccessControl a service uses to
 * authenticate requests, and a per-token rate limiter. Depends on src/db only; the GraphQL
 * layer enforces the checks, the server wires them.
 */
export { AccessControl, LAST_USED_INTERVAL_MS, TOKEN_CACHE_MS_DEFAULT } from './access-control.ts';
export type { AccessControlOptions, Principal } from './access-control.ts';
export { TokenError } from './errors.ts';
export type { TokenErrorCode } from './errors.ts';
export { RateLimiter } from './rate-limiter.ts';
export type { RateLimiterOptions } from './rate-limiter.ts';
export {
  SCOPES_MAX,
  SCOPE_ACTIONS,
  ScopeSet,
  formatScope,
  matchesQueuePattern,
  parseScopes,
} from './scopes.ts';
export type { Scope, ScopeAction } from './scopes.ts';
export {
  SECRET_PREFIX,
  createToken,
  findTokenBySecret,
  hashSecret,
  listTokens,
  looksLikeSecret,
  revokeToken,
  touchToken,
} from './tokens.ts';
export type { ApiToken, CreatedToken } from './tokens.ts';
