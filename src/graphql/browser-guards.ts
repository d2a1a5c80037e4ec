import type { IncomingMessage } from 'node:http';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createGraphQLError } from 'graphql-yoga';
import type { CORSOptions, Plugin } from 'graphql-yoga';
import { FORBIDDEN_CODE } from './authorization.ts';

/**
 * Headers that prove a request was not sent by a browser on another site's behalf: a page
 * can only add them to a cross-origin request after a CORS preflight, which the service
 * grants to no origin unless configured. `x-graphql-yoga-csrf` is yoga's own (any value);
 * `authorization` qualifies for the same reason and is what API clients send anyway.
 */
export const CSRF_HEADERS = ['x-graphql-yoga-csrf', 'authorization'] as const;

/**
 * yoga's CSRF prevention: a request that a browser may send cross-site without a preflight
 * (a GET, or a POST of a form or text/plain) is refused with 403 unless it carries one of
 * {@link CSRF_HEADERS}. JSON POSTs, which is what clients and GraphiQL send, pass. The
 * refusal gets `extensions.code` FORBIDDEN (the plugin's own error has none). This matters
 * most with authentication off, where the service trusts whoever reaches it: without it, any
 * web page open in a browser on the same machine could send mutations to localhost.
 */
export function csrfPreventionPlugin(): Plugin {
  const inner = useCSRFPrevention({ requestHeaders: [...CSRF_HEADERS] });
  return {
    onRequestParse(payload) {
      try {
        return inner.onRequestParse?.(payload);
      } catch {
        throw createGraphQLError(
          `refused as a possible cross-site request: send JSON with content-type application/json, or set one of the headers ${CSRF_HEADERS.join(', ')}`,
          { extensions: { code: FORBIDDEN_CODE, http: { status: 403 } } },
        );
      }
    },
  };
}

/**
 * yoga's `cors` option for the allowed browser origins: none (no CORS headers at all, so
 * browsers keep pages of other origins from calling the API: yoga's default would allow
 * every origin), a list, or `*` for any. Credentials (cookies) are never allowed: the API
 * authenticates with bearer tokens.
 */
export function corsOptions(allowedOrigins: readonly string[]): CORSOptions | false {
  if (allowedOrigins.length === 0) return false;
  return {
    origin: allowedOrigins.includes('*') ? '*' : [...allowedOrigins],
    credentials: false,
    allowedHeaders: ['content-type', 'authorization', 'x-request-id', 'x-graphql-yoga-csrf'],
    methods: ['GET', 'POST'],
  };
}

/**
 * Whether a WebSocket upgrade may proceed. Browsers open WebSockets to any origin without a
 * preflight (cross-site WebSocket hijacking), so the Origin header is checked here: requests
 * without one (not from a browser) pass, and so do same-origin ones (GraphiQL) and allowed
 * origins.
 */
export function webSocketOriginAllowed(
  request: IncomingMessage,
  allowedOrigins: readonly string[],
): boolean {
  const origin = request.headers.origin;
  if (origin === undefined || allowedOrigins.includes('*') || allowedOrigins.includes(origin)) {
    return true;
  }
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}
