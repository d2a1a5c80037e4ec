import { createGraphQLError } from 'graphql-yoga';
import type { ValidationContext, ValidationRule } from 'graphql';

/**
 * A validation rule refusing introspection (`__schema`, `__type`; `__typename` stays
 * allowed, clients need it). For deployments that do not want the schema served: the SDL is
 * public in the repository anyway, so this is about exposure, not secrecy. Matched by field
 * name, not with graphql-js's NoSchemaIntrospectionCustomRule, whose type checks rely on
 * instanceof and would miss fields when two copies of graphql are loaded (see errors.ts).
 */
export const noIntrospectionRule: ValidationRule = (context: ValidationContext) => ({
  Field(node) {
    const name = node.name.value;
    if (name === '__schema' || name === '__type') {
      context.reportError(
        createGraphQLError(`introspection is disabled on this service ("${name}")`, {
          nodes: node,
          extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
        }),
      );
    }
  },
});
