import { Kind } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import type {
  FragmentDefinitionNode,
  SelectionSetNode,
  ValidationContext,
  ValidationRule,
} from 'graphql';

/** Deepest field nesting accepted when createGraphQLHandler is not told otherwise. */
export const MAX_DEPTH_DEFAULT = 10;

/**
 * A validation rule refusing operations whose fields nest deeper than `maxDepth`:
 * `{ queues { stats { ready } } }` has depth 3. Fragments count where they are spread.
 * Introspection fields (`__schema`, `__type`) are not counted, so GraphiQL and codegen work
 * whatever the limit. Today's schema has no cycles, so no legitimate query is deep; the rule
 * keeps it that way if one is added (Queue.messages → Message.queue → …), before a deep
 * query costs a database round trip per level.
 */
export function depthLimitRule(maxDepth: number): ValidationRule {
  if (!Number.isInteger(maxDepth) || maxDepth < 1) {
    throw new RangeError(`maxDepth must be a positive integer; got ${maxDepth}`);
  }
  return (context: ValidationContext) => ({
    OperationDefinition(operation) {
      const depth = selectionDepth(operation.selectionSet, context, new Set(), maxDepth);
      if (depth > maxDepth) {
        const name = operation.name === undefined ? 'the operation' : `"${operation.name.value}"`;
        context.reportError(
          createGraphQLError(`${name} nests fields deeper than the limit of ${maxDepth}`, {
            nodes: operation,
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
          }),
        );
      }
    },
  });
}

/**
 * Depth of a selection set; stops descending past `limit` (the answer is "too deep" either
 * way), and skips fragments already on the path (cycles are reported by NoFragmentCyclesRule).
 */
function selectionDepth(
  selectionSet: SelectionSetNode,
  context: ValidationContext,
  path: Set<string>,
  limit: number,
): number {
  let deepest = 0;
  for (const selection of selectionSet.selections) {
    let depth: number;
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith('__')) continue;
      depth =
        selection.selectionSet === undefined || limit <= 0
          ? 1
          : 1 + selectionDepth(selection.selectionSet, context, path, limit - 1);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      depth = selectionDepth(selection.selectionSet, context, path, limit);
    } else {
      const name = selection.name.value;
      const fragment: FragmentDefinitionNode | null | undefined = context.getFragment(name);
      if (fragment == null || path.has(name)) continue;
      path.add(name);
      depth = selectionDepth(fragment.selectionSet, context, path, limit);
      path.delete(name);
    }
    deepest = Math.max(deepest, depth);
  }
  return deepest;
}
