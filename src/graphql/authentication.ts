import type { Plugin } from 'graphql-yoga';
import { RateLimiter } from '../auth/index.ts';
import type { AccessControl, Principal } from '../auth/index.ts';
import { translateDatabaseError } from '../queue/index.ts';
import { rateLimited, unauthenticated } from './authorization.ts';
import type { RequestAccess } from './authorization.ts';

/** How the GraphQL handler authenticates requests; see createGraphQLHandler's `auth`. */
export interface AuthOptions {
  /** Looks tokens up (and caches them for at most a second). */
  control: AccessControl;
  /**
   * Per-token request limit: `perSecond` sustained, `burst` at once. Every HTTP request and
   * every WebSocket operation counts one; events pushed on a subscription do not. Undefined:
   * no limit.
   */
  rateLimit?: { perSecond: number; burst: number };
}

/** `Authorization: Bearer <secret>`, scheme case-insensitive (RFC 9110). */
const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The secret of a credential: an Authorization header value (`Bearer hl_…`), or the same
 * string given as graphql-ws connectionParams.authorization. Undefined when there is none.
 */
export function bearerSecret(credential: unknown): string | undefined {
  if (typeof credential !== 'string') return undefined;
  return BEARER.exec(credential)?.[1];
}

/**
 * Admits requests: authenticates their bearer token and counts them against the token's
 * rate limit. Built once per GraphQL handler; shared by HTTP and WebSocket.
 */
export class AuthGate {
  private readonly control: AccessControl;
  private readonly limiter: RateLimiter | undefined;

  constructor(options: AuthOptions) {
    this.control = options.control;
    this.limiter = options.rateLimit === undefined ? undefined : new RateLimiter(options.rateLimit);
  }

  /**
   * The principal of a credential (see {@link bearerSecret}). Throws UNAUTHENTICATED when
   * it is missing, malformed, unknown or revoked (one message for the last three: which one
   * it was is no business of someone without a valid token), UNAVAILABLE when the database
   * cannot answer.
   */
  async authenticate(credential: unknown): Promise<Principal> {
    const secret = bearerSecret(credential);
    if (secret === undefined) {
      throw unauthenticated('authentication required: send "Authorization: Bearer <token>"');
    }
    let principal: Principal | undefined;
    try {
      principal = await this.control.authenticate(secret);
    } catch (error) {
      throw translateDatabaseError(error);
    }
    if (principal === undefined)
      throw unauthenticated('the token is not valid (unknown or revoked)');
    return principal;
  }

  /** Authenticates, then takes one request from the token's rate limit (RATE_LIMITED when over). */
  async admit(credential: unknown): Promise<RequestAccess> {
    const principal = await this.authenticate(credential);
    const wait = this.limiter?.take(principal.tokenId) ?? 0;
    if (wait > 0) throw rateLimited(wait);
    return { kind: 'token', principal, control: this.control };
  }
}

/**
 * A yoga plugin that admits every HTTP request before its body is parsed (so nothing of an
 * unauthenticated request is parsed, validated or introspected), and records its access
 * for the context factory. Failures end the request: 401 or 429, with the GraphQL error.
 */
export function authenticationPlugin(
  gate: AuthGate,
  admitted: WeakMap<Request, RequestAccess>,
): Plugin {
  return {
    async onRequestParse({ request, serverContext }) {
      // Admitted already by the JSON POST path, which handed the request on with its body.
      const given = (serverContext as { access?: RequestAccess }).access;
      admitted.set(request, given ?? (await gate.admit(request.headers.get('authorization'))));
    },
  };
}
