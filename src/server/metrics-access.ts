import type { IncomingMessage } from 'node:http';
import type { AccessControl } from '../auth/index.ts';
import { bearerSecret } from '../graphql/authentication.ts';
import { isLoopbackHost } from './config.ts';

/** Why a /metrics request is refused: the HTTP status, headers and a coded error. */
export interface MetricsRefusal {
  status: 401 | 403 | 503;
  headers: Record<string, string>;
  code: 'UNAUTHENTICATED' | 'FORBIDDEN' | 'UNAVAILABLE';
  message: string;
}

/** Decides whether one /metrics request may read the metrics: undefined when it may. */
export type MetricsAccess = (req: IncomingMessage) => Promise<MetricsRefusal | undefined>;

const CHALLENGE = { 'www-authenticate': 'Bearer realm="holdline"' };

/**
 * The rule for /metrics (docs/security.md, "Metrics"). The metrics name every queue and its
 * depth, which is what a `read` scope on every queue shows through GraphQL, so:
 *
 * - `control` undefined (METRICS_TOKEN_REQUIRED off): anyone who reaches the port may scrape;
 * - otherwise a request from a loopback address (127.0.0.0/8, ::1) may, as a Prometheus or
 *   agent on the same machine does, and any other needs `Authorization: Bearer <token>` of
 *   a live token allowed `read` on every queue (`read:*`, `receive:*` or `admin`): 401
 *   without a valid token, 403 with one that lacks it, 503 when tokens cannot be checked.
 *
 * Not rate limited: a scrape every few seconds is the expected load, and the token cache of
 * `control` keeps it to one lookup a second.
 */
export function metricsAccess(control: AccessControl | undefined): MetricsAccess {
  return async (req) => {
    if (control === undefined) return undefined;
    // The socket's peer, never a forwarded-for header: that one is whatever the client says.
    if (isLoopbackHost(req.socket.remoteAddress ?? '')) return undefined;
    const secret = bearerSecret(req.headers.authorization);
    if (secret === undefined) {
      return refusal(401, 'UNAUTHENTICATED', 'metrics need "Authorization: Bearer <token>"');
    }
    let principal;
    try {
      principal = await control.authenticate(secret);
    } catch {
      return { status: 503, headers: {}, code: 'UNAVAILABLE', message: 'tokens cannot be checked' };
    }
    if (principal === undefined) {
      return refusal(401, 'UNAUTHENTICATED', 'the token is not valid (unknown or revoked)');
    }
    if (!principal.scopes.allowsEveryQueue('read')) {
      return {
        status: 403,
        headers: {},
        code: 'FORBIDDEN',
        message: 'metrics need a token with read on every queue (read:*, receive:* or admin)',
      };
    }
    return undefined;
  };
}

function refusal(status: 401, code: 'UNAUTHENTICATED', message: string): MetricsRefusal {
  return { status, headers: CHALLENGE, code, message };
}
