import { Kind, OperationTypeNode } from 'graphql';
// The coercion functions come from graphql's CommonJS files, the copy yoga and its schema
// use: a test runner resolves the bare 'graphql' to the ESM copy, whose instanceof checks
// refuse the schema's types (see errors.ts). Node resolves both to the same files.
import { getArgumentValues, getVariableValues } from 'graphql/execution/values.js';
import type {
  DocumentNode,
  GraphQLEnumType,
  GraphQLList,
  GraphQLNonNull,
  GraphQLScalarType,
  ExecutionArgs,
  ExecutionResult,
  FieldNode,
  GraphQLField,
  GraphQLFieldResolver,
  GraphQLObjectType,
  GraphQLOutputType,
  GraphQLResolveInfo,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Compiled execution of the service's everyday operations: a send, an ack, a receive of a
 * thousand deliveries. graphql-js (yoga's executor) resolves every field of every result
 * object through the general machinery — a resolve-info object, a path, argument
 * coercion, promise checks — even where the field is a plain property of the engine's
 * result: for a receive of 1,000 deliveries that is 14,000 field resolutions and about 5 µs
 * per delivery of the service's CPU, more than the rest of the GraphQL pipeline. Here a
 * validated operation of a simple shape is compiled once per document into a function that
 * calls the root field's resolver as the executor would and then copies the selected
 * properties of its result, serializing leaves with their types' own `serialize`.
 *
 * The answer is the executor's, exactly: only the happy path is compiled. Whatever else
 * can happen goes to the executor it replaces (yoga's), untouched:
 * - operations of another shape (not compiled at all): subscriptions, several root fields,
 *   fragments, directives, a response key given twice, introspection, abstract types, fields
 *   below the root that have their own resolver or take arguments;
 * - variables or root arguments that do not coerce (the executor reports them; no resolver
 *   has run);
 * - a root resolver that throws or rejects, and a result the compiled function cannot
 *   complete (a null where the schema says non-null, a value a scalar cannot serialize, an
 *   Error, a promise or a function in place of a value): the executor then runs the
 *   operation with the root resolver *replaying* the outcome it already had (the same value
 *   or the same error, never a second call), so the errors, their paths and the nulls are
 *   the executor's own.
 * Every envelop plugin still sees the execution (it replaces only the execute function):
 * masking, error logging, metrics, the cost limit.
 */

/**
 * The kind of a schema type by its tag (`GraphQLNonNull`, `GraphQLObjectType`, …), not by
 * instanceof, for the same reason as the imports above.
 */
function tagOf(type: GraphQLOutputType): string {
  return (type as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] ?? '';
}

/** What a compiled completion returns when the executor must complete the value instead. */
const IRREGULAR: unique symbol = Symbol('irregular');

/** Copies a resolved value into its response shape, or says IRREGULAR. */
type Completer = (value: unknown) => unknown;

/** The outcome of a root resolver, kept for the executor to replay. */
type Outcome = { threw: false; value: unknown } | { threw: true; error: unknown };

/** An operation compiled for one schema: the root field and how to complete its value. */
interface CompiledOperation {
  operation: OperationDefinitionNode;
  rootType: GraphQLObjectType;
  /** Undefined when the root field is `__typename`. */
  rootField: GraphQLField<unknown, unknown> | undefined;
  fieldNode: FieldNode;
  responseKey: string;
  complete: Completer;
}

/**
 * Root resolvers' outcomes awaiting a replay, by the operation's context object (one
 * execution at a time per context: an operation here has a single root field).
 */
const replays = new WeakMap<object, Outcome>();

/** Root fields whose resolver answers replays; see {@link replayable}. */
const replayableFields = new WeakSet<object>();

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Makes a root field's resolver answer a replay when its context holds one (the outcome the
 * compiled path already had), and otherwise run as before. Field objects of a schema are
 * mutable config; graphql-tools attaches resolvers to them the same way.
 */
function replayable(field: GraphQLField<unknown, unknown>): void {
  if (replayableFields.has(field)) return;
  const resolve: GraphQLFieldResolver<unknown, unknown> | undefined = field.resolve;
  if (resolve === undefined) return;
  field.resolve = (source, args, context: unknown, info) => {
    const outcome =
      typeof context === 'object' && context !== null ? replays.get(context) : undefined;
    if (outcome === undefined) return resolve(source, args, context, info);
    replays.delete(context as object);
    if (outcome.threw) throw outcome.error;
    return outcome.value;
  };
  replayableFields.add(field);
}

/** A leaf's completion: the executor's `serialize`, whose null or throw goes back to it. */
function leafCompleter(serialize: (value: unknown) => unknown): Completer {
  return (value) => {
    try {
      const serialized = serialize(value);
      return serialized == null ? IRREGULAR : serialized;
    } catch {
      return IRREGULAR;
    }
  };
}

/**
 * The completion of `type` for `selectionSet`, or undefined when the shape is not one this
 * module compiles (the executor then runs the whole operation).
 */
function compileType(
  type: GraphQLOutputType,
  selectionSet: SelectionSetNode | undefined,
): Completer | undefined {
  const tag = tagOf(type);
  if (tag === 'GraphQLNonNull') {
    const inner = compileType((type as GraphQLNonNull<GraphQLOutputType>).ofType, selectionSet);
    if (inner === undefined) return undefined;
    return (value) => (value == null ? IRREGULAR : inner(value));
  }
  let complete: Completer | undefined;
  if (tag === 'GraphQLList') {
    const item = compileType((type as GraphQLList<GraphQLOutputType>).ofType, selectionSet);
    if (item === undefined) return undefined;
    complete = (value) => {
      if (!Array.isArray(value)) return IRREGULAR;
      const list = new Array<unknown>(value.length);
      for (let i = 0; i < value.length; i++) {
        const completed = item(value[i]);
        if (completed === IRREGULAR) return IRREGULAR;
        list[i] = completed;
      }
      return list;
    };
  } else if (tag === 'GraphQLScalarType' || tag === 'GraphQLEnumType') {
    if (selectionSet !== undefined) return undefined;
    const leaf = type as GraphQLScalarType | GraphQLEnumType;
    complete = leafCompleter((value) => leaf.serialize(value));
  } else if (tag === 'GraphQLObjectType') {
    const object = type as GraphQLObjectType;
    if (selectionSet === undefined || object.isTypeOf != null) return undefined;
    complete = compileObject(object, selectionSet);
    if (complete === undefined) return undefined;
  } else {
    return undefined; // Interfaces and unions: the executor resolves their types.
  }
  const completeValue = complete;
  return (value) => {
    if (value == null) return null;
    if (value instanceof Error || isThenable(value) || typeof value === 'function') {
      return IRREGULAR;
    }
    return completeValue(value);
  };
}

/** The completion of an object's selection: each field a plain property (default resolver). */
function compileObject(
  type: GraphQLObjectType,
  selectionSet: SelectionSetNode,
): Completer | undefined {
  const fields = type.getFields();
  const keys: string[] = [];
  const names: string[] = [];
  const completers: (Completer | undefined)[] = []; // undefined: __typename.
  for (const selection of selectionSet.selections) {
    if (selection.kind !== Kind.FIELD) return undefined;
    if ((selection.directives?.length ?? 0) > 0 || (selection.arguments?.length ?? 0) > 0) {
      return undefined;
    }
    const key = selection.alias?.value ?? selection.name.value;
    // `__proto__` is a legal alias; assigned to a plain object it would set the prototype.
    if (keys.includes(key) || key === '__proto__') return undefined;
    const name = selection.name.value;
    if (name === '__typename') {
      if (selection.selectionSet !== undefined) return undefined;
      keys.push(key);
      names.push(name);
      completers.push(undefined);
      continue;
    }
    const field = fields[name];
    if (field === undefined || field.resolve !== undefined) return undefined;
    const completer = compileType(field.type, selection.selectionSet);
    if (completer === undefined) return undefined;
    keys.push(key);
    names.push(name);
    completers.push(completer);
  }
  const typeName = type.name;
  const count = keys.length;
  return (value) => {
    // The executor's completion of an object type requires an object to read fields from.
    if (typeof value !== 'object') return IRREGULAR;
    const source = value as Record<string, unknown>;
    const object: Record<string, unknown> = {};
    for (let i = 0; i < count; i++) {
      const completer = completers[i];
      if (completer === undefined) {
        object[keys[i]!] = typeName;
        continue;
      }
      const property = source[names[i]!];
      // The default resolver calls a function-valued property: left to the executor.
      if (typeof property === 'function') return IRREGULAR;
      const completed = completer(property);
      if (completed === IRREGULAR) return IRREGULAR;
      object[keys[i]!] = completed;
    }
    return object;
  };
}

/** The operation `operationName` picks from `document`, as the executor picks it. */
function selectedOperation(
  document: DocumentNode,
  operationName: string | null | undefined,
): OperationDefinitionNode | undefined {
  let found: OperationDefinitionNode | undefined;
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) return undefined; // Fragments: not compiled.
    if (operationName == null) {
      if (found !== undefined) return undefined; // Ambiguous: the executor says so.
      found = definition;
    } else if (definition.name?.value === operationName) {
      found = definition;
    }
  }
  return found;
}

/** Compiles `document`'s operation for `schema`, or undefined when its shape is not compiled. */
function compileOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): CompiledOperation | undefined {
  const operation = selectedOperation(document, operationName);
  if (operation === undefined || (operation.directives?.length ?? 0) > 0) return undefined;
  const rootType =
    operation.operation === OperationTypeNode.QUERY
      ? schema.getQueryType()
      : operation.operation === OperationTypeNode.MUTATION
        ? schema.getMutationType()
        : undefined;
  if (rootType == null) return undefined;
  const selections = operation.selectionSet.selections;
  const fieldNode = selections[0];
  if (selections.length !== 1 || fieldNode?.kind !== Kind.FIELD) return undefined;
  if ((fieldNode.directives?.length ?? 0) > 0) return undefined;
  const responseKey = fieldNode.alias?.value ?? fieldNode.name.value;
  const name = fieldNode.name.value;
  if (name === '__typename') {
    if (fieldNode.selectionSet !== undefined) return undefined;
    const typeName = rootType.name;
    return {
      operation,
      rootType,
      rootField: undefined,
      fieldNode,
      responseKey,
      complete: () => typeName,
    };
  }
  const rootField = rootType.getFields()[name];
  // `__schema` and `__type` are not fields of the root type: introspection is not compiled.
  if (rootField?.resolve === undefined) return undefined;
  const complete = compileType(rootField.type, fieldNode.selectionSet);
  if (complete === undefined) return undefined;
  replayable(rootField);
  return { operation, rootType, rootField, fieldNode, responseKey, complete };
}

/** Compiled operations by schema, document and operation name (null: none compiled). */
const compiled = new WeakMap<
  GraphQLSchema,
  WeakMap<DocumentNode, Map<string, CompiledOperation | null>>
>();

function compiledFor(args: ExecutionArgs): CompiledOperation | undefined {
  let bySchema = compiled.get(args.schema);
  if (bySchema === undefined) {
    bySchema = new WeakMap();
    compiled.set(args.schema, bySchema);
  }
  let byName = bySchema.get(args.document);
  if (byName === undefined) {
    byName = new Map();
    bySchema.set(args.document, byName);
  }
  const key = args.operationName ?? '';
  let operation = byName.get(key);
  if (operation === undefined) {
    operation = compileOperation(args.schema, args.document, args.operationName) ?? null;
    byName.set(key, operation);
  }
  return operation ?? undefined;
}

type Execute = (args: ExecutionArgs) => unknown;

/**
 * Runs `operation` compiled; `executor` (the execute function it replaces) answers whatever
 * is not the happy path: see the module's comment.
 */
async function executeCompiled(
  operation: CompiledOperation,
  args: ExecutionArgs,
  executor: Execute,
): Promise<unknown> {
  const { rootField, fieldNode, rootType, responseKey } = operation;
  const variables = getVariableValues(
    args.schema,
    operation.operation.variableDefinitions ?? [],
    args.variableValues ?? {},
    { maxErrors: 50 },
  );
  if (variables.errors !== undefined) return executor(args);
  if (rootField === undefined) {
    return { data: { [responseKey]: operation.complete(undefined) } };
  }
  let argumentValues: Record<string, unknown>;
  try {
    argumentValues = getArgumentValues(rootField, fieldNode, variables.coerced);
  } catch {
    return executor(args); // The executor reports it; no resolver has run.
  }
  const info: GraphQLResolveInfo = {
    fieldName: rootField.name,
    fieldNodes: [fieldNode],
    returnType: rootField.type,
    parentType: rootType,
    path: { prev: undefined, key: responseKey, typename: rootType.name },
    schema: args.schema,
    fragments: {},
    rootValue: args.rootValue,
    operation: operation.operation,
    variableValues: variables.coerced,
  };
  const context = args.contextValue;
  let outcome: Outcome;
  try {
    outcome = {
      threw: false,
      value: await rootField.resolve!(args.rootValue, argumentValues, context, info),
    };
  } catch (error) {
    outcome = { threw: true, error };
  }
  if (!outcome.threw) {
    const completed = operation.complete(outcome.value);
    if (completed !== IRREGULAR) return { data: { [responseKey]: completed } };
  }
  if (typeof context !== 'object' || context === null) {
    throw new Error('compiled execution needs a context object to replay into');
  }
  replays.set(context, outcome);
  try {
    return await executor(args);
  } finally {
    replays.delete(context);
  }
}

/**
 * An envelop plugin that runs operations of the shapes described above compiled (see the
 * module's comment), on every transport. Operations are compiled on first execution and
 * kept per parsed document (yoga's parse cache hands out the same document for the same
 * text), so a client's fixed operations compile once.
 */
export function compiledExecutionPlugin(): Plugin {
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const execution = args as ExecutionArgs & { signal?: unknown };
      // An executor given its own field resolver or an abort signal keeps the whole run.
      if (execution.fieldResolver != null || execution.signal != null) return;
      const operation = compiledFor(execution);
      if (operation === undefined) return;
      const executor = executeFn as Execute;
      setExecuteFn(function compiledExecute(given: ExecutionArgs) {
        return executeCompiled(operation, given, executor) as Promise<ExecutionResult>;
      });
    },
  };
}
