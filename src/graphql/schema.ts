import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import type {
  DocumentNode,
  ExecutionArgs,
  ExecutionResult,
  GraphQLError,
  GraphQLSchema,
} from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import type { Plugin, YogaInitialContext, YogaLogger, YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import type { QueueEngine } from '../queue/index.ts';
import { StreamRegistry } from './abortable-iterator.ts';
import { createContext, requestIdOf } from './context.ts';
import type { GraphQLContext } from './context.ts';
import { DeliveryTracker } from './delivery-tracker.ts';
import { MAX_DEPTH_DEFAULT, depthLimitRule } from './depth-limit.ts';
import { createErrorMapper, createMaskError, errorLoggingPlugin } from './errors.ts';
import { MessageResolvers } from './resolvers/Message.ts';
import { MutationResolvers } from './resolvers/Mutation.ts';
import { QueryResolvers } from './resolvers/Query.ts';
import { QueueConfigResolvers, QueueResolvers } from './resolvers/Queue.ts';
import { SubscriptionResolvers } from './resolvers/Subscription.ts';
import { DateTimeScalar, JSONScalar } from './scalars.ts';

/** Where the API is served, for HTTP (queries, mutations, SSE) and WebSocket alike. */
export const GRAPHQL_PATH = '/graphql';

/** The schema file (schema-first: the SDL is the contract), at the repository root. */
export const SCHEMA_FILE = new URL('../../schema.graphql', import.meta.url);

/** What GraphiQL shows on first open: one of each kind of operation, ready to run. */
export const GRAPHIQL_EXAMPLE = `# Holdline: a transactional message queue in PostgreSQL.
# Pick an operation with the run button; the Docs panel documents every field.

mutation CreateQueue {
  createQueue(name: "orders", config: { visibilityTimeout: 30, maxAttempts: 5 }) {
    name
    config { visibilityTimeout maxAttempts deadLetterQueue }
  }
}

mutation Send {
  send(queue: "orders", message: { payload: { orderId: 1 }, priority: 0 }) {
    id
    state
    position
  }
}

# Waits up to 5 seconds for a message; the receipt acks it.
mutation Receive {
  receive(queue: "orders", max: 1, waitSeconds: 5) {
    receipt
    leaseExpiresAt
    message { id payload attempts }
  }
}

# Put the receipt from Receive in the Variables panel: { "receipt": "..." }
mutation Ack($receipt: String!) {
  ack(receipt: $receipt)
}

query Queues {
  queues {
    name
    paused
    stats { ready delayed leased total oldestReadyAgeSeconds }
  }
}

subscription Deliveries {
  deliveries(queue: "orders", prefetch: 1) {
    receipt
    message { id payload attempts }
  }
}
`;

/** Reads the SDL from {@link SCHEMA_FILE}. */
export function loadTypeDefs(): string {
  return readFileSync(SCHEMA_FILE, 'utf8');
}

/** The executable schema: schema.graphql with this module's resolvers and scalars. */
export function createExecutableSchema(): GraphQLSchema {
  return createSchema<GraphQLContext>({
    typeDefs: loadTypeDefs(),
    resolvers: {
      JSON: JSONScalar,
      DateTime: DateTimeScalar,
      Query: QueryResolvers,
      Mutation: MutationResolvers,
      Subscription: SubscriptionResolvers,
      Queue: QueueResolvers,
      QueueConfig: QueueConfigResolvers,
      Message: MessageResolvers,
    },
  });
}

/**
 * What the transport adds to yoga's initial context: node's request (HTTP and WebSocket), and
 * the request id when the HTTP server has already chosen one.
 */
export interface GraphQLServerContext {
  /** The HTTP request, or the WebSocket upgrade request. */
  req?: IncomingMessage;
  /** The WebSocket of an operation that came over graphql-ws. */
  socket?: WebSocket;
  /** The HTTP server's id for this request, used as is (it also sets the response header). */
  requestId?: string;
}

/** The yoga instance: a node `(req, res)` handler with `fetch` and `handleNodeRequestAndResponse`. */
export type GraphQLYoga = YogaServerInstance<GraphQLServerContext, GraphQLContext>;

/** What {@link createGraphQLHandler} returns. */
export interface GraphQLHandler {
  /** Serves GRAPHQL_PATH: queries, mutations, SSE subscriptions. */
  yoga: GraphQLYoga;
  /**
   * Ends every open subscription of this handler (SSE and WebSocket): each stream stops, and
   * the deliveries a `deliveries` subscriber had not acked are nacked (delay 0) so other
   * consumers get them at once. Resolves when all are released. For shutdown; subscriptions
   * that start later are served as usual (after engine.stop() they end at once).
   */
  releaseSubscriptions(): Promise<void>;
}

/** Options of {@link createGraphQLHandler}. */
export interface GraphQLHandlerOptions {
  /** The started engine every resolver calls. */
  engine: QueueEngine;
  /** Logger for the handler, e.g. a child with `{ component: 'graphql' }`; requests add `requestId`. */
  logger: Logger;
  /** Serve GraphiQL to browsers on GET /graphql. Default true. */
  graphiql?: boolean;
  /** Deepest field nesting accepted (introspection not counted). Default {@link MAX_DEPTH_DEFAULT}. */
  maxDepth?: number;
  /** More yoga/envelop plugins (metrics, tracing), run after ours. */
  plugins?: Plugin[];
}

/**
 * Builds the GraphQL API: a graphql-yoga instance serving {@link GRAPHQL_PATH} for queries,
 * mutations and SSE subscriptions (`Accept: text/event-stream`); WebSocket subscriptions
 * come from {@link attachWebSocketServer}. Use `handler.yoga` as a node handler
 * (`http.createServer(handler.yoga)`, or `yoga.handleNodeRequestAndResponse(req, res,
 * { requestId })`), or in-process with `handler.yoga.fetch(url, init)`.
 *
 * - Errors: masked; QueueError codes become `extensions.code` (errors.ts); anything
 *   unexpected is "Unexpected error." and logged once with its stack.
 * - Limits: field depth at most `maxDepth`; batched requests (JSON arrays) refused.
 * - Request ids: `requestId` from the server context when given, else the caller's
 *   `x-request-id` when sane, else a UUID; on every log line of the request.
 * - GraphiQL with an example of each operation, unless `graphiql: false`.
 *
 * Reads schema.graphql from disk once, here. No database I/O until a request comes.
 */
export function createGraphQLHandler(options: GraphQLHandlerOptions): GraphQLHandler {
  const logger = options.logger;
  const streams = new StreamRegistry();
  const deps = { engine: options.engine, logger, deliveryTracker: new DeliveryTracker(), streams };
  const mapError = createErrorMapper(logger);
  const depthLimit = depthLimitRule(options.maxDepth ?? MAX_DEPTH_DEFAULT);
  const depthLimitPlugin: Plugin = {
    onValidate({ addValidationRule }) {
      addValidationRule(depthLimit);
    },
  };

  const yoga = createYoga<GraphQLServerContext, GraphQLContext>({
    schema: createExecutableSchema(),
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql:
      options.graphiql === false
        ? false
        : { title: 'Holdline GraphiQL', defaultQuery: GRAPHIQL_EXAMPLE },
    // Other paths belong to the HTTP server (health, metrics): a plain 404, not yoga's page.
    landingPage: false,
    batching: false,
    maskedErrors: { maskError: createMaskError(mapError) },
    logging: yogaLogger(logger),
    plugins: [depthLimitPlugin, errorLoggingPlugin(mapError), ...(options.plugins ?? [])],
    context: (initial: YogaInitialContext & GraphQLServerContext): GraphQLContext => {
      // Over WebSocket there is no Fetch Request: the upgrade request carries the headers.
      const request = initial.request as Request | undefined;
      const requestId = initial.requestId ?? requestIdOf(request ?? initial.req);
      return createContext(deps, requestId, request?.signal);
    },
  });
  return { yoga, releaseSubscriptions: () => streams.closeAll() };
}

/**
 * yoga's own log calls on the handler's pino logger. yoga logs at error level every error
 * that masking changed, which includes every QueueError (client mistakes, not faults);
 * errors.ts has logged the unexpected ones once already, so yoga's go to debug.
 */
function yogaLogger(logger: Logger): YogaLogger {
  const at =
    (level: 'debug' | 'info' | 'warn') =>
    (...args: unknown[]): void => {
      const [first, ...rest] = args;
      if (first instanceof Error) logger[level]({ err: first, details: rest }, 'yoga');
      else logger[level]({ details: args }, 'yoga');
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('debug') };
}

/** The enveloped execution functions of one graphql-ws operation, found by its args. */
interface EnvelopedExecution {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

/** What yoga.getEnveloped hands back, typed (envelop types parse and validate loosely). */
interface Enveloped extends EnvelopedExecution {
  schema: GraphQLSchema;
  parse: (source: string) => DocumentNode;
  validate: (schema: GraphQLSchema, document: DocumentNode) => readonly GraphQLError[];
  contextFactory: () => unknown;
}

/**
 * Serves GraphQL over WebSocket (the graphql-transport-ws protocol of graphql-ws) on the
 * HTTP server's upgrade requests to {@link GRAPHQL_PATH}. Every operation runs through the
 * same yoga plugins as HTTP (yoga's getEnveloped recipe): error masking, the depth limit,
 * context with request id. Returns a function that closes every socket (code 1001, so their
 * subscriptions end and release their deliveries) and stops accepting upgrades; it does not
 * close the HTTP server.
 */
export function attachWebSocketServer(yoga: GraphQLYoga, server: Server): () => Promise<void> {
  const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const executions = new WeakMap<ExecutionArgs, EnvelopedExecution>();
  const disposable = useServer(
    {
      execute: (args) => enveloped(executions, args).execute(args) as Promise<ExecutionResult>,
      subscribe: (args) => enveloped(executions, args).subscribe(args) as Promise<ExecutionResult>,
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
        }) as Enveloped;
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (error) {
          // Returned, not thrown: graphql-ws closes the whole socket on a thrown error.
          return [error as GraphQLError];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        const args: ExecutionArgs = {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
        };
        executions.set(args, { execute, subscribe });
        return args;
      },
    },
    wsServer,
  );
  return async () => {
    await disposable.dispose();
  };
}

function enveloped(
  executions: WeakMap<ExecutionArgs, EnvelopedExecution>,
  args: ExecutionArgs,
): EnvelopedExecution {
  const execution = executions.get(args);
  if (execution === undefined) throw new Error('operation did not pass through onSubscribe');
  return execution;
}
