import { Kind } from 'graphql';
import type { ExecutionResult, GraphQLError, GraphQLErrorOptions } from 'graphql';
import { createGraphQLError, handleStreamOrSingleExecutionResult } from 'graphql-yoga';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { QueueError } from '../queue/index.ts';
import type { GraphQLContext } from './context.ts';

/** What clients see instead of an error the service did not expect. */
export const UNEXPECTED_ERROR_MESSAGE = 'Unexpected error.';

/** `extensions.code` of a masked unexpected error. */
export const INTERNAL_ERROR_CODE = 'INTERNAL_SERVER_ERROR';

/** A GraphQL error's code that callers may branch on; see DESIGN.md "Errors". */
export const BAD_USER_INPUT_CODE = 'BAD_USER_INPUT';

/**
 * Whether `error` is a GraphQLError. By name, as envelop does, not instanceof: graphql ships
 * as CommonJS and as ESM, and a bundler or test runner may load both (yoga's executor on
 * one, this module on the other), so errors of either kind must be recognised. For the
 * same reason errors are made with yoga's createGraphQLError, of the copy yoga uses.
 */
export function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof Error && error.name === 'GraphQLError';
}

/**
 * The thrown value behind a GraphQL error: graphql-js wraps what a resolver throws in a
 * located GraphQLError (path, positions) with the original as `originalError`, sometimes
 * twice (variable coercion).
 */
function rootCause(error: unknown): unknown {
  let cause = error;
  while (isGraphQLError(cause) && cause.originalError != null) {
    cause = cause.originalError;
  }
  return cause;
}

/** Location of the outermost GraphQL error, so the mapped error still points at its field. */
function location(error: unknown): GraphQLErrorOptions {
  if (!isGraphQLError(error)) return {};
  return {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
  };
}

/**
 * Maps an error to what a client may see; `requestLogger` (the request's, with its
 * requestId) is where an unexpected error is logged, else the mapper's own logger.
 */
export type ErrorMapper = (error: unknown, requestLogger?: Logger) => GraphQLError;

/**
 * Maps any error to the GraphQLError a client may see. This is the only place where domain
 * errors meet GraphQL:
 * - a QueueError becomes its message with `extensions.code` = its code (QUEUE_NOT_FOUND,
 *   LEASE_LOST, BAD_USER_INPUT, PAYLOAD_TOO_LARGE, UNAVAILABLE, …);
 * - a GraphQLError made on purpose (parse and validation errors, scalar input errors,
 *   errors already mapped here) passes unchanged, keeping its code; a variable that does
 *   not fit its type gets BAD_USER_INPUT;
 * - anything else is a bug or an outage nobody translated: it becomes "Unexpected error."
 *   with code INTERNAL_SERVER_ERROR, and is logged once, with its stack.
 * Idempotent: mapping a mapped error returns it unchanged (and logs nothing).
 */
export function createErrorMapper(logger: Logger): ErrorMapper {
  // The same error reaches the mapper more than once (logged with the request's logger
  // first, then masked by yoga, then seen by yoga's error handler): it is logged once.
  const logged = new WeakSet<object>();
  const firstTime = (cause: unknown): boolean => {
    if (typeof cause !== 'object' || cause === null) return true;
    if (logged.has(cause)) return false;
    logged.add(cause);
    return true;
  };
  return (error, requestLogger = logger) => {
    const cause = rootCause(error);
    if (cause instanceof QueueError) {
      if (cause.code === 'UNAVAILABLE' && firstTime(cause)) {
        requestLogger.warn({ err: cause.cause ?? cause }, 'request failed: database unavailable');
      }
      return createGraphQLError(cause.message, {
        ...location(error),
        extensions: { code: cause.code },
      });
    }
    if (isGraphQLError(cause)) {
      const made = isGraphQLError(error) ? error : cause;
      // A variable the client sent that does not fit its type (a bad DateTime, a string
      // for an Int) is the client's mistake: graphql-js reports it without a code.
      if (
        made.extensions.code === undefined &&
        made.nodes?.some((node) => node.kind === Kind.VARIABLE_DEFINITION) === true
      ) {
        return createGraphQLError(made.message, {
          ...location(made),
          extensions: { ...made.extensions, code: BAD_USER_INPUT_CODE },
        });
      }
      return made;
    }
    if (firstTime(cause)) {
      requestLogger.error({ err: cause, path: pathOf(error) }, 'unexpected error');
    }
    return createGraphQLError(UNEXPECTED_ERROR_MESSAGE, {
      ...location(error),
      // `unexpected` is yoga's marker for a 500 when there is no data; yoga strips it from
      // the response.
      extensions: { code: INTERNAL_ERROR_CODE, unexpected: true },
    });
  };
}

function pathOf(error: unknown): string | undefined {
  return isGraphQLError(error) && error.path !== undefined ? error.path.join('.') : undefined;
}

/**
 * yoga's `maskedErrors.maskError`: see {@link createErrorMapper}. The yoga-provided message
 * is ignored: ours is {@link UNEXPECTED_ERROR_MESSAGE}.
 */
export function createMaskError(map: ErrorMapper): (error: unknown, message: string) => Error {
  return (error) => map(error);
}

/**
 * A yoga plugin that runs the errors of each result through `map` with the request's
 * logger, before yoga masks them (user plugins run first), so an unexpected error is logged
 * with its requestId; masking then finds it logged already.
 */
export function errorLoggingPlugin(map: ErrorMapper): Plugin {
  // The request's logger is looked up only for a result with errors: the context makes it
  // on first use, and most results have none.
  const logErrors =
    (context: unknown) =>
    ({ result }: { result: ExecutionResult }): void => {
      if (result.errors === undefined || result.errors.length === 0) return;
      const logger = requestLogger(context);
      for (const error of result.errors) map(error, logger);
    };
  return {
    onExecute({ args }) {
      return {
        onExecuteDone: (done) =>
          handleStreamOrSingleExecutionResult(done, logErrors(args.contextValue)),
      };
    },
    onSubscribe({ args }) {
      return {
        onSubscribeResult: (done) =>
          handleStreamOrSingleExecutionResult(done, logErrors(args.contextValue)),
      };
    },
  };
}

function requestLogger(context: unknown): Logger | undefined {
  return (context as Partial<GraphQLContext> | undefined)?.logger?.();
}

/** A GraphQL input error with code BAD_USER_INPUT, for scalars and argument checks. */
export function badUserInput(message: string): GraphQLError {
  return createGraphQLError(message, { extensions: { code: BAD_USER_INPUT_CODE } });
}
