import { sessionToken } from './session-token.ts';

/** Where the API is: the same origin as the page, so no CORS is involved. */
export const GRAPHQL_PATH = '/graphql';

/**
 * A refusal or failure of the API: the error's `extensions.code` (UNAUTHENTICATED,
 * FORBIDDEN, QUEUE_NOT_FOUND, …) and its message, as the service sent them.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface GraphQLResponseBody {
  data?: unknown;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** Runs one operation against the service's GraphQL API. */
export type Request = <T>(query: string, variables?: Record<string, unknown>) => Promise<T>;

/**
 * The dashboard's one door to the service: a JSON POST to /graphql with the session's token
 * as `Authorization: Bearer …`. Both pass the service's cross-site request guard legitimately
 * (a JSON POST from the same origin is what the guard lets through, and the Authorization
 * header is one of the headers it accepts). Throws {@link ApiError} with the first error's
 * code when the response carries errors; `onUnauthenticated` is told first when that code
 * is UNAUTHENTICATED (a wrong, revoked or missing token).
 */
export function createRequest(onUnauthenticated: (error: ApiError) => void): Request {
  return async <T>(query: string, variables?: Record<string, unknown>): Promise<T> => {
    const token = sessionToken.get();
    let response: Response;
    try {
      response = await fetch(GRAPHQL_PATH, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
        body: JSON.stringify({ query, variables }),
      });
    } catch {
      throw new ApiError('UNAVAILABLE', 'the service did not answer (is it running?)');
    }
    let body: GraphQLResponseBody;
    try {
      body = (await response.json()) as GraphQLResponseBody;
    } catch {
      throw new ApiError(
        'UNAVAILABLE',
        `the service answered HTTP ${response.status} without JSON`,
      );
    }
    const first = body.errors?.[0];
    if (first !== undefined) {
      const error = new ApiError(first.extensions?.code ?? 'INTERNAL_SERVER_ERROR', first.message);
      if (error.code === 'UNAUTHENTICATED') onUnauthenticated(error);
      throw error;
    }
    return body.data as T;
  };
}
