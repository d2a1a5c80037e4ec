/**
 * How the bench's own consumers (subscription-consumer.ts, sse-consumer.ts) treat the
 * service's per-token rate limit: as a client should, by waiting the Retry-After the refusal
 * names and trying again, and by counting the refusals so that a report can say how often
 * the limit, rather than the delivery path, set the pace.
 */
import { isHoldlineError } from '../../src/client/index.ts';
import { sleep } from './clock.ts';

/** The contract's code for a request over the token's rate limit. */
const RATE_LIMITED = 'RATE_LIMITED';

/** What the service says when it refuses: at least a second (src/graphql/authorization.ts). */
const RETRY_AFTER_MS_FALLBACK = 1000;

/** GraphQL errors as a graphql-ws sink or a JSON response carries them. */
interface FormattedErrors {
  readonly errors: readonly { extensions?: Record<string, unknown> }[];
}

/** A GraphQL result's errors as an Error, so a refusal keeps its code for {@link retryAfterMs}. */
export class GraphQLResultError extends Error implements FormattedErrors {
  override name = 'GraphQLResultError';

  constructor(
    what: string,
    readonly errors: readonly { message?: string; extensions?: Record<string, unknown> }[],
  ) {
    super(`${what}: ${JSON.stringify(errors)}`);
  }
}

/**
 * When `error` is a RATE_LIMITED refusal (a HoldlineError of the HTTP client, a
 * {@link GraphQLResultError}, or the error list a graphql-ws sink gets), the ms to wait
 * before trying again: the refusal's retryAfterSeconds, else a second. Undefined for any
 * other error.
 */
export function retryAfterMs(error: unknown): number | undefined {
  let extensions: Record<string, unknown> | undefined;
  if (isHoldlineError(error)) {
    if (error.code !== RATE_LIMITED) return undefined;
    extensions = error.extensions;
  } else {
    const errors = Array.isArray(error)
      ? (error as FormattedErrors['errors'])
      : error instanceof GraphQLResultError
        ? error.errors
        : [];
    const refusal = errors.find((e) => e.extensions?.code === RATE_LIMITED);
    if (refusal === undefined) return undefined;
    extensions = refusal.extensions;
  }
  const seconds = extensions?.retryAfterSeconds;
  return typeof seconds === 'number' && seconds > 0 ? seconds * 1000 : RETRY_AFTER_MS_FALLBACK;
}

/** Counts of what {@link withRateLimitRetries} met. */
export interface RateLimitCounts {
  /** Calls the service refused with RATE_LIMITED (each retried after its Retry-After). */
  rateLimited: number;
}

/**
 * Runs `call` until it succeeds; a RATE_LIMITED refusal is counted in `counts` and retried
 * after its Retry-After, any other failure is rethrown. When `giveUp` aborts during a wait,
 * the last refusal is rethrown.
 */
export async function withRateLimitRetries<T>(
  call: () => Promise<T>,
  counts: RateLimitCounts,
  giveUp: AbortSignal,
): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const waitMs = retryAfterMs(error);
      if (waitMs === undefined || giveUp.aborted) throw error;
      counts.rateLimited++;
      await sleep(waitMs, giveUp);
      if (giveUp.aborted) throw error;
    }
  }
}
