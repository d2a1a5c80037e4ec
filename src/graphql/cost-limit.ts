import { Kind, OperationTypeNode } from 'graphql';
import type {
  DocumentNode,
  ExecutionArgs,
  ExecutionResult,
  FieldNode,
  FragmentDefinitionNode,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionSetNode,
  ValueNode,
} from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import type { Plugin } from 'graphql-yoga';
import { BATCH_MAX_LIMIT, LIST_MESSAGES_FIRST_MAX, RECEIVE_MAX_LIMIT } from '../queue/index.ts';

/** Largest operation cost accepted when createGraphQLHandler is not told otherwise. */
export const MAX_COST_DEFAULT = 20_000;

/** Assumed length of a list that no argument bounds (`queues`, `publish`'s copies). */
export const UNBOUNDED_LIST_ESTIMATE = 100;

/**
 * Fields that cost more than 1 because each one runs a statement of its own per parent
 * object: `position` and `estimatedWaitSeconds` count the queue's ready messages ahead, and
 * `messageCount` counts matching messages up to its `max`.
 */
const FIELD_COSTS: Readonly<Record<string, number>> = {
  'Query.messageCount': 100,
  'Queue.stats': 10,
  'Queue.bindings': 10,
  'Message.position': 100,
  'Message.estimatedWaitSeconds': 100,
};

/**
 * List fields whose length an argument bounds: the argument, its default, and the most the
 * engine accepts (its own limits, so that the range has one source of truth).
 */
const LIST_SIZE_ARGUMENTS: Readonly<
  Record<string, { argument: string; fallback: number; max: number }>
> = {
  'Mutation.receive': { argument: 'max', fallback: 1, max: RECEIVE_MAX_LIMIT },
  'Mutation.sendBatch': { argument: 'messages', fallback: 1, max: BATCH_MAX_LIMIT },
  'Query.messages': { argument: 'first', fallback: 50, max: LIST_MESSAGES_FIRST_MAX },
};

/** Structural views of graphql-js types, read without instanceof (see isGraphQLError). */
interface FieldsType {
  name: string;
  getFields?: () => Record<string, { type: unknown }>;
}

/**
 * The static cost of an operation, with its variables: every field costs 1 (the few that
 * run their own statement cost more, see FIELD_COSTS), and the cost of a list's selection is
 * multiplied by the list's length bound: `receive(max)`, `messages(first)`, the messages of
 * `sendBatch`, or {@link UNBOUNDED_LIST_ESTIMATE} for `queues` and `publish`. A bound out of
 * the engine's range (`max: 100000`) counts as 1, since the resolver refuses it before any
 * work: the caller gets the range rule instead of a misleading cost error. Introspection
 * is free. `{ receive(queue: "q", max: 100) { receipt message { id payload } } }` costs
 * 1 + 100 × (1 + 1 + 2) = 401. A subscription is costed per event.
 */
export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Readonly<Record<string, unknown>> | null | undefined,
): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  let operation: OperationDefinitionNode | undefined;
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      fragments.set(definition.name.value, definition);
    } else if (definition.kind === Kind.OPERATION_DEFINITION) {
      if (operationName == null || definition.name?.value === operationName) {
        operation ??= definition;
      }
    }
  }
  if (operation === undefined) return 0;
  const root =
    operation.operation === OperationTypeNode.QUERY
      ? schema.getQueryType()
      : operation.operation === OperationTypeNode.MUTATION
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  if (root == null) return 0;
  const walk: Walk = { schema, fragments, variables: variables ?? {} };
  return selectionCost(walk, operation.selectionSet, root, new Set());
}

interface Walk {
  schema: GraphQLSchema;
  fragments: Map<string, FragmentDefinitionNode>;
  variables: Readonly<Record<string, unknown>>;
}

function selectionCost(
  walk: Walk,
  selectionSet: SelectionSetNode,
  parent: FieldsType,
  spread: Set<string>,
): number {
  let total = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      total += fieldCost(walk, selection, parent, spread);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const type =
        selection.typeCondition === undefined
          ? parent
          : (walk.schema.getType(selection.typeCondition.name.value) as FieldsType | undefined);
      if (type !== undefined) total += selectionCost(walk, selection.selectionSet, type, spread);
    } else {
      const name = selection.name.value;
      const fragment = walk.fragments.get(name);
      // A cycle is refused by validation (NoFragmentCyclesRule); this only avoids looping.
      if (fragment === undefined || spread.has(name)) continue;
      const type = walk.schema.getType(fragment.typeCondition.name.value) as FieldsType | undefined;
      if (type === undefined) continue;
      spread.add(name);
      total += selectionCost(walk, fragment.selectionSet, type, spread);
      spread.delete(name);
    }
  }
  return total;
}

function fieldCost(walk: Walk, field: FieldNode, parent: FieldsType, spread: Set<string>): number {
  const name = field.name.value;
  if (name.startsWith('__')) return 0;
  const key = `${parent.name}.${name}`;
  const own = FIELD_COSTS[key] ?? 1;
  const definition = parent.getFields?.()[name];
  if (definition === undefined || field.selectionSet === undefined) return own;
  // String(type) is the SDL form, e.g. "[Delivery!]!": list-ness and the named type, read
  // without graphql-js's instanceof checks.
  const typeText = String(definition.type);
  const child = walk.schema.getType(typeText.replace(/[[\]!]/g, '')) as FieldsType | undefined;
  if (child === undefined) return own;
  const multiplier = typeText.startsWith('[') ? listSize(walk, key, field) : 1;
  return own + multiplier * selectionCost(walk, field.selectionSet, child, spread);
}

function listSize(walk: Walk, key: string, field: FieldNode): number {
  const bound = LIST_SIZE_ARGUMENTS[key];
  if (bound === undefined) return UNBOUNDED_LIST_ESTIMATE;
  const argument = field.arguments?.find((a) => a.name.value === bound.argument);
  const value = argument === undefined ? undefined : valueOf(argument.value, walk.variables);
  const size = Array.isArray(value) ? value.length : value;
  if (typeof size !== 'number' || !Number.isFinite(size)) return bound.fallback;
  // A bound outside the engine's range yields no items: the field's resolver refuses it
  // with the range rule (BAD_USER_INPUT) before any work. Costing it by its value would
  // answer `receive(max: 100000)` with a cost-limit message that hides the real rule.
  if (size < 1 || size > bound.max) return 1;
  return size;
}

/** An argument's value where the cost depends on it: an integer, or a list's items. */
function valueOf(node: ValueNode, variables: Readonly<Record<string, unknown>>): unknown {
  switch (node.kind) {
    case Kind.VARIABLE:
      return variables[node.name.value];
    case Kind.INT:
      return Number(node.value);
    case Kind.LIST:
      return node.values;
    default:
      return undefined;
  }
}

/** The error of an operation over the limit: refused before any resolver runs. */
function tooCostly(cost: number, maxCost: number): ExecutionResult {
  return {
    errors: [
      createGraphQLError(
        `the operation costs ${cost}, over the limit of ${maxCost}: ask for fewer items or fields`,
        { extensions: { code: 'GRAPHQL_VALIDATION_FAILED', cost, maxCost } },
      ),
    ],
  };
}

/**
 * A yoga plugin refusing operations whose {@link operationCost} exceeds `maxCost`. It runs
 * at execution, not validation, because the cost depends on variables (`receive(max: $max)`),
 * which validation does not see; no resolver has run when it refuses.
 */
export function costLimitPlugin(maxCost: number): Plugin {
  if (!Number.isInteger(maxCost) || maxCost < 1) {
    throw new RangeError(`maxCost must be a positive integer; got ${maxCost}`);
  }
  const costOf = (args: ExecutionArgs): number =>
    operationCost(args.schema, args.document, args.operationName, args.variableValues);
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const cost = costOf(args);
      if (cost > maxCost) setResultAndStopExecution(tooCostly(cost, maxCost));
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const cost = costOf(args);
      if (cost > maxCost) setResultAndStopExecution(tooCostly(cost, maxCost));
    },
  };
}
