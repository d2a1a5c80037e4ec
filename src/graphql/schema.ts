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
import { PACKAGE_ROOT } from '../package-files.ts';
import type { QueueEngine } from '../queue/index.ts';
import { StreamRegistry } from './abortable-iterator.ts';
import { AuthGate, authenticationPlugin } from './authentication.ts';
import type { AuthOptions } from './authentication.ts';
import { OPEN_ACCESS, UNAUTHENTICATED_CODE } from './authorization.ts';
import type { RequestAccess } from './authorization.ts';
import { corsOptions, csrfPreventionPlugin, webSocketOriginAllowed } from './browser-guards.ts';
import { graphiqlOffPlugin, graphiqlOptions, offlineGraphiQLRenderer } from './graphiql.ts';
import { createContext, requestIdOf } from './context.ts';
import type { GraphQLContext } from './context.ts';
import { compiledExecutionPlugin } from './compiled-execution.ts';
import { MAX_COST_DEFAULT, costLimitPlugin } from './cost-limit.ts';
import { DeliveryTracker } from './delivery-tracker.ts';
import { SharedQueueStats } from './stats-stream.ts';
import { MAX_DEPTH_DEFAULT, depthLimitRule } from './depth-limit.ts';
import { createErrorMapper, createMaskError, errorLoggingPlugin } from './errors.ts';
import type { ErrorMapper } from './errors.ts';
import { noIntrospectionRule } from './introspection.ts';
import { createJsonPostHandler } from './json-post.ts';
import type { GraphQLNodeHandler } from './json-post.ts';
import { parseLimitPlugin } from './parse-limit.ts';
import { MessageResolvers } from './resolvers/Message.ts';
import { MutationResolvers } from './resolvers/Mutation.ts';
import { QueryResolvers } from './resolvers/Query.ts';
import { QueueConfigResolvers, QueueResolvers, QueueStatsResolvers } from './resolvers/Queue.ts';
import { ScheduleResolvers } from './resolvers/Schedule.ts';
import { SubscriptionResolvers } from './resolvers/Subscription.ts';
import { ViewerResolvers } from './resolvers/Viewer.ts';
import { DateTimeScalar, JSONScalar } from './scalars.ts';

/** Where the API is served, for HTTP (queries, mutations, SSE) and WebSocket alike. */
export const GRAPHQL_PATH = '/graphql';

/** The schema file (schema-first: the SDL is the contract), at the package's root. */
export const SCHEMA_FILE = new URL('schema.graphql', PACKAGE_ROOT);

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
      QueueStats: QueueStatsResolvers,
      Message: MessageResolvers,
      Schedule: ScheduleResolvers,
      Viewer: ViewerResolvers,
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
  /**
   * The request's access when it was admitted before yoga saw it: a WebSocket operation
   * (attachWebSocketServer), or a JSON POST that json-post.ts hands on with its body.
   */
  access?: RequestAccess;
  /** Aborts when the client goes away, for a request that reaches execution without a Fetch Request. */
  signal?: AbortSignal;
}

/** The yoga instance: a node `(req, res)` handler with `fetch` and `handleNodeRequestAndResponse`. */
export type GraphQLYoga = YogaServerInstance<GraphQLServerContext, GraphQLContext>;

/** What {@link createGraphQLHandler} returns. */
export interface GraphQLHandler {
  /**
   * Serves GRAPHQL_PATH over node's HTTP server: programs' JSON POSTs on the lean path of
   * json-post.ts, everything else (browsers, GET, SSE) through yoga.
   */
  serve: GraphQLNodeHandler;
  /** Yoga itself: in-process `yoga.fetch`, and what attachWebSocketServer attaches to. */
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
  /**
   * Serve GraphiQL (offline, from the package) to browsers on GET /graphql; with `auth` its
   * headers editor opens for the token. False: browsers get a page saying it is off and how
   * to turn it on. Default true.
   */
  graphiql?: boolean;
  /** Deepest field nesting accepted (introspection not counted). Default {@link MAX_DEPTH_DEFAULT}. */
  maxDepth?: number;
  /**
   * Bearer-token authentication, scope checks and the per-token rate limit. Undefined (the
   * default): no authentication, every request may do everything. The service decides this
   * from its configuration (AUTH_REQUIRED); tests and embedders choose explicitly.
   */
  auth?: AuthOptions;
  /** Answer introspection (`__schema`, `__type`). Default true. */
  introspection?: boolean;
  /** Largest operation cost accepted (see cost-limit.ts). Default {@link MAX_COST_DEFAULT}. */
  maxCost?: number;
  /**
   * Browser origins allowed to call the API from their pages (CORS, and WebSocket Origin
   * checks), e.g. `https://ops.example.com`; `*` for any. Default none: only same-origin
   * pages (GraphiQL) and non-browser clients.
   */
  allowedOrigins?: readonly string[];
  /**
   * Run operations of a simple shape (a send, an ack, a receive: one root field, plain
   * properties below it) compiled, with the answers of yoga's executor (compiled-execution.ts).
   * Default true; false runs every operation through yoga's executor, the reference the
   * compiled path is tested against.
   */
  compiledExecution?: boolean;
  /** More yoga/envelop plugins (metrics, tracing), run after ours. */
  plugins?: Plugin[];
}

/**
 * Builds the GraphQL API: a graphql-yoga instance serving {@link GRAPHQL_PATH} for queries,
 * mutations and SSE subscriptions (`Accept: text/event-stream`); WebSocket subscriptions
 * come from {@link attachWebSocketServer}. Use `handler.yoga` as a node handler
 * (`http.createServer(handler.yoga)`, or `handler.yoga(req, res, { requestId })`), or
 * in-process with `handler.yoga.fetch(url, init)`.
 *
 * - Errors: masked; QueueError codes become `extensions.code` (errors.ts); anything
 *   unexpected is "Unexpected error." and logged once with its stack.
 * - Limits: tokens and nesting bounded at parse (parse-limit.ts), field depth at most
 *   `maxDepth`, cost at most `maxCost`; batched requests (JSON arrays) refused.
 * - Security: with `auth`, every request needs a live bearer token, each resolver checks
 *   the token's scopes, and each token is rate limited. Always: cross-site request
 *   (CSRF) prevention, no CORS unless `allowedOrigins`, mutations never over GET.
 * - Request ids: `requestId` from the server context when given, else the caller's
 *   `x-request-id` when sane, else a UUID; on every log line of the request.
 * - GraphiQL with an example of each operation, unless `graphiql: false`.
 *
 * Reads schema.graphql from disk once, here. No database I/O until a request comes.
 */
export function createGraphQLHandler(options: GraphQLHandlerOptions): GraphQLHandler {
  const logger = options.logger;
  const streams = new StreamRegistry();
  const deps = {
    engine: options.engine,
    logger,
    deliveryTracker: new DeliveryTracker(),
    streams,
    queueStats: new SharedQueueStats(options.engine),
  };
  const mapError = createErrorMapper(logger);
  const depthLimit = depthLimitRule(options.maxDepth ?? MAX_DEPTH_DEFAULT);
  const introspection = options.introspection ?? true;
  const validationPlugin: Plugin = {
    onValidate({ addValidationRule }) {
      addValidationRule(depthLimit);
      if (!introspection) addValidationRule(noIntrospectionRule);
    },
  };
  const gate = options.auth === undefined ? undefined : new AuthGate(options.auth);
  // What each HTTP request was admitted with, from onRequestParse to the context factory.
  const admitted = new WeakMap<Request, RequestAccess>();
  const allowedOrigins = options.allowedOrigins ?? [];

  const yoga = createYoga<GraphQLServerContext, GraphQLContext>({
    schema: createExecutableSchema(),
    graphqlEndpoint: GRAPHQL_PATH,
    // Served from the package (no CDN), so it works offline; see graphiql.ts.
    graphiql:
      options.graphiql === false ? false : graphiqlOptions(GRAPHIQL_EXAMPLE, gate !== undefined),
    renderGraphiQL: offlineGraphiQLRenderer(),
    // Other paths belong to the HTTP server (health, metrics): a plain 404, not yoga's page.
    landingPage: false,
    batching: false,
    // The HTTP server bounds every body before yoga sees it (a declared Content-Length is
    // required and checked against MAX_BODY_BYTES; Node reads no more than it declares), and
    // WebSocket messages have no HTTP body. Yoga's own limit streams each body through a
    // TransformStream to count it: a third of the service's CPU for a single send (217–237
    // µs per send without it, 342–364 with it, 8 producers over HTTP).
    maxRequestBodySize: false,
    maskedErrors: { maskError: createMaskError(mapError) },
    logging: yogaLogger(logger),
    cors: corsOptions(allowedOrigins),
    plugins: [
      // A browser opening /graphql with GraphiQL off learns why, not a CSRF refusal.
      ...(options.graphiql === false ? [graphiqlOffPlugin(GRAPHQL_PATH)] : []),
      // Both run before the body is parsed: a refused request costs no parsing.
      csrfPreventionPlugin(),
      ...(gate === undefined ? [] : [authenticationPlugin(gate, admitted)]),
      parseLimitPlugin(),
      validationPlugin,
      costLimitPlugin(options.maxCost ?? MAX_COST_DEFAULT),
      // Replaces the execute function for operations of a simple shape (a send, an ack, a
      // receive); every plugin's hooks still run around it.
      ...(options.compiledExecution === false ? [] : [compiledExecutionPlugin()]),
      errorLoggingPlugin(mapError),
      ...(options.plugins ?? []),
    ],
    context: (initial: YogaInitialContext & GraphQLServerContext): GraphQLContext => {
      // Over WebSocket there is no Fetch Request: the upgrade request carries the headers.
      const request = initial.request as Request | undefined;
      const requestId = initial.requestId ?? requestIdOf(request ?? initial.req);
      const access =
        initial.access ??
        (request === undefined ? undefined : admitted.get(request)) ??
        (gate === undefined ? OPEN_ACCESS : undefined);
      // With authentication on, a request that was not admitted must never run: fail closed.
      if (access === undefined) throw new Error('request reached execution without being admitted');
      return createContext(deps, requestId, request?.signal ?? initial.signal, access);
    },
  });
  webSocketSecurity.set(yoga, { gate, allowedOrigins, mapError });
  return {
    serve: createJsonPostHandler({ yoga, gate }),
    yoga,
    releaseSubscriptions: () => streams.closeAll(),
  };
}

/** What attachWebSocketServer enforces for a yoga instance: what its HTTP side enforces. */
interface WebSocketSecurity {
  gate: AuthGate | undefined;
  allowedOrigins: readonly string[];
  mapError: ErrorMapper;
}

/**
 * Security settings by yoga instance, registered by createGraphQLHandler. Kept here rather
 * than passed to attachWebSocketServer, so that attaching WebSockets to a handler built with
 * authentication can never serve them without it.
 */
const webSocketSecurity = new WeakMap<GraphQLYoga, WebSocketSecurity>();

/** graphql-ws close code for a connection refused for its token (as graphql-ws's own 4401). */
export const WS_UNAUTHENTICATED_CLOSE_CODE = 4401;

/** graphql-ws close code when the token could not be checked (database down): retry later. */
const WS_TRY_AGAIN_LATER_CLOSE_CODE = 1013;

/**
 * A WebSocket connection's credential: connectionParams `authorization` (what browsers can
 * send: they cannot set headers on a WebSocket), else the upgrade request's Authorization
 * header.
 */
function webSocketCredential(
  connectionParams: Readonly<Record<string, unknown>> | undefined,
  request: IncomingMessage,
): unknown {
  return (
    connectionParams?.authorization ??
    connectionParams?.Authorization ??
    request.headers.authorization
  );
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
 * same yoga plugins as HTTP (yoga's getEnveloped recipe): error masking, the depth and cost
 * limits, context with request id. Returns a function that closes every socket (code 1001,
 * so their subscriptions end and release their deliveries) and stops accepting upgrades; it
 * does not close the HTTP server.
 *
 * Security is the handler's (see createGraphQLHandler): upgrades from a browser page of
 * another origin are refused (403) unless allowed; with `auth`, the connection's token
 * (connectionParams `authorization: "Bearer …"`, or the upgrade's Authorization header) is
 * checked at connection_init — a missing, wrong or revoked one closes the socket with
 * {@link WS_UNAUTHENTICATED_CLOSE_CODE} — and again for every operation, which also counts
 * against the token's rate limit; a refused operation gets its error, the socket stays.
 */
export function attachWebSocketServer(yoga: GraphQLYoga, server: Server): () => Promise<void> {
  const security = webSocketSecurity.get(yoga);
  if (security === undefined)
    throw new Error('attachWebSocketServer needs a yoga from createGraphQLHandler');
  const { gate, allowedOrigins, mapError } = security;
  const wsServer = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    // Refused with 403, not ws's default 401: no credential would help a foreign origin.
    verifyClient: (
      { req }: { req: IncomingMessage },
      done: (allowed: boolean, status?: number, message?: string) => void,
    ) => {
      if (webSocketOriginAllowed(req, allowedOrigins)) done(true);
      else done(false, 403, 'origin not allowed');
    },
  });
  const executions = new WeakMap<ExecutionArgs, EnvelopedExecution>();
  const disposable = useServer(
    {
      execute: (args) => enveloped(executions, args).execute(args) as Promise<ExecutionResult>,
      subscribe: (args) => enveloped(executions, args).subscribe(args) as Promise<ExecutionResult>,
      onConnect: async (ctx) => {
        if (gate === undefined) return true;
        try {
          await gate.authenticate(webSocketCredential(ctx.connectionParams, ctx.extra.request));
          return true;
        } catch (error) {
          const mapped = mapError(error);
          const unauthenticated = mapped.extensions.code === UNAUTHENTICATED_CODE;
          // The reason is the error, so clients can tell; a close reason holds 123 bytes.
          const reason = `${String(mapped.extensions.code)}: ${mapped.message}`.slice(0, 120);
          ctx.extra.socket.close(
            unauthenticated ? WS_UNAUTHENTICATED_CLOSE_CODE : WS_TRY_AGAIN_LATER_CLOSE_CODE,
            reason,
          );
          return false;
        }
      },
      onSubscribe: async (ctx, _id, payload) => {
        let access: RequestAccess = OPEN_ACCESS;
        if (gate !== undefined) {
          try {
            // Again per operation: a token revoked after connecting starts nothing new.
            access = await gate.admit(webSocketCredential(ctx.connectionParams, ctx.extra.request));
          } catch (error) {
            return [mapError(error)];
          }
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          access,
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
