import { parse } from 'graphql';
import type { ParseOptions, Source } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import type { Plugin } from 'graphql-yoga';

/** Most tokens a document may have: far above real operations, far below a parser overflow. */
export const MAX_TOKENS_DEFAULT = 10_000;

/**
 * Bounds parsing. graphql-js parses recursively, so a document nested a few thousand levels
 * deep (`[[[[…` or `{ a { a { …`) overflows the stack, which would surface as a masked 500;
 * it is refused as a parse failure instead, and `maxTokens` caps the parser's work on
 * documents that are merely huge. Errors are rebuilt with yoga's own constructor so yoga
 * sees them as GraphQL errors whichever copy of graphql-js produced them.
 */
export function parseLimitPlugin(maxTokens = MAX_TOKENS_DEFAULT): Plugin {
  return {
    onParse({ setParseFn }) {
      // envelop types the parse function's arguments loosely; they are graphql-js's.
      setParseFn((source: string | Source, options?: ParseOptions) => {
        try {
          return parse(source, { ...options, maxTokens });
        } catch (error) {
          if (error instanceof RangeError) {
            throw createGraphQLError('Syntax Error: the document is nested too deeply.', {
              extensions: { code: 'GRAPHQL_PARSE_FAILED' },
            });
          }
          if (error instanceof Error && error.name === 'GraphQLError') {
            throw createGraphQLError(error.message, {
              extensions: { code: 'GRAPHQL_PARSE_FAILED' },
            });
          }
          throw error;
        }
      });
    },
  };
}
