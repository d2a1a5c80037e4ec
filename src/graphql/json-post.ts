import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DocumentNode, ExecutionArgs, ExecutionResult, GraphQLSchema } from 'graphql';
import { OperationTypeNode, getOperationAST } from 'graphql';
import { processRegularResult } from 'graphql-yoga';
import type { AuthGate } from './authentication.ts';
import { OPEN_ACCESS } from './authorization.ts';
import type { RequestAccess } from './authorization.ts';
import type { GraphQLServerContext, GraphQLYoga } from './schema.ts';

/**
 * The service's everyday request without yoga's Fetch layer: a JSON POST to /graphql from a
 * program (no Origin header: not a browser page) that asks for a JSON answer. It runs
 * through the very same envelop plugins as every other request (yoga's getEnveloped, as
 * the WebSocket transport does: parse and validation caches and limits, cost limit, error
 * masking and logging, metrics) and its answer is made by yoga's own result processor, so
 * status, headers and body are what yoga would send. What it leaves out is the per-request
 * Fetch machinery (a Request and a Response object, their Headers, body streams and
 * AbortSignal, the request-parser and result-processor plugin chains): with authentication
 * on that was about 170 µs of the service's CPU per request on the development machine,
 * two thirds of a `{ __typename }` and more than half of a single send
 * (docs/performance.md, W8).
 *
 * Anything else is yoga's, untouched: GET, browsers (CORS, CSRF, GraphiQL), other media
 * types (SSE, multipart), subscriptions, and every request this path cannot answer exactly
 * as yoga would — a body that is not a plain `{ query, variables?, operationName? }`, a
 * refused token, a document that does not parse or validate. Those are handed to yoga with
 * their body (and, once admitted, their access, so a token is counted once).
 */

/** A node handler for GRAPHQL_PATH; `requestId` comes from the HTTP server. */
export type GraphQLNodeHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  context: { requestId: string },
) => Promise<void>;

/** What getEnveloped hands back, typed (envelop types these loosely). */
interface Enveloped {
  schema: GraphQLSchema;
  parse: (source: string) => DocumentNode;
  validate: (schema: GraphQLSchema, document: DocumentNode) => readonly unknown[];
  contextFactory: () => unknown;
  execute: (args: ExecutionArgs) => unknown;
}

/** The request's parameters, when they have exactly the shape yoga accepts without remark. */
interface OperationParams {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
}

/**
 * The media type yoga would answer a JSON POST with, for the Accept headers this path
 * serves: none or `*∕*` → application/json; one of the two JSON types, or both (the first
 * listed wins, as in yoga). Undefined for anything else (yoga decides).
 */
export function acceptedJsonMediaType(accept: string | undefined): string | undefined {
  if (accept === undefined) return 'application/json';
  const listed = accept.replace(/\s/g, '').toLowerCase().split(',');
  if (listed.length > 2) return undefined;
  for (const type of listed) {
    if (type !== 'application/json' && type !== 'application/graphql-response+json') {
      return listed.length === 1 && type === '*/*' ? 'application/json' : undefined;
    }
  }
  return listed[0];
}

/** A JSON content type: `application/json`, with at most a utf-8 charset. */
function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [type, ...params] = contentType.replace(/\s/g, '').toLowerCase().split(';');
  return type === 'application/json' && params.every((p) => p === 'charset=utf-8');
}

function operationParams(body: unknown): OperationParams | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  for (const key of Object.keys(body)) {
    if (key !== 'query' && key !== 'variables' && key !== 'operationName') return undefined;
  }
  const { query, variables, operationName } = body as Record<string, unknown>;
  if (typeof query !== 'string') return undefined;
  if (
    variables !== undefined &&
    variables !== null &&
    (typeof variables !== 'object' || Array.isArray(variables))
  ) {
    return undefined;
  }
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
    return undefined;
  }
  return body as OperationParams;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** The part of a Fetch Response that processRegularResult fills in, kept as given. */
class CapturedResponse {
  constructor(
    readonly body: string | null,
    readonly init: { status?: number; headers?: Record<string, string> } = {},
  ) {}
}
const CAPTURE = { Response: CapturedResponse } as unknown as Parameters<
  typeof processRegularResult
>[1];

/** An AbortSignal that aborts when the client goes away before its answer is sent. */
function clientGone(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** Options of {@link createJsonPostHandler}. */
export interface JsonPostHandlerOptions {
  yoga: GraphQLYoga;
  /** Admits requests with authentication on; undefined: open access. */
  gate: AuthGate | undefined;
}

/** Serves GRAPHQL_PATH: JSON POSTs from programs on the path above, the rest through yoga. */
export function createJsonPostHandler(options: JsonPostHandlerOptions): GraphQLNodeHandler {
  const { yoga, gate } = options;

  /** Hands a request whose body was read to yoga, and writes yoga's answer. */
  const toYoga = async (
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    serverContext: GraphQLServerContext,
  ): Promise<void> => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
    }
    const url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
    const response = await yoga.fetch(
      url,
      { method: 'POST', headers, body: new Uint8Array(body) },
      serverContext,
    );
    const text = await response.text();
    response.headers.forEach((value, name) => res.setHeader(name, value));
    res.writeHead(response.status);
    res.end(text);
  };

  return async (req, res, { requestId }) => {
    const mediaType =
      req.method === 'POST' &&
      req.headers.origin === undefined &&
      isJsonContentType(req.headers['content-type'])
        ? acceptedJsonMediaType(req.headers.accept)
        : undefined;
    if (mediaType === undefined) {
      await yoga(req, res, { requestId });
      return;
    }
    const body = await readBody(req);
    let params: OperationParams | undefined;
    try {
      params = operationParams(JSON.parse(body.toString('utf8')));
    } catch {
      params = undefined; // Not JSON: yoga says so.
    }
    if (params === undefined) return toYoga(req, res, body, { requestId });

    let access: RequestAccess = OPEN_ACCESS;
    if (gate !== undefined) {
      try {
        access = await gate.admit(req.headers.authorization);
      } catch {
        // Refused (or the token could not be checked): yoga admits again and answers.
        return toYoga(req, res, body, { requestId });
      }
    }
    const signal = clientGone(res);
    const serverContext: GraphQLServerContext = { req, requestId, access, signal };
    const enveloped = yoga.getEnveloped({ ...serverContext, params }) as unknown as Enveloped;
    let document: DocumentNode;
    try {
      document = enveloped.parse(params.query);
    } catch {
      return toYoga(req, res, body, serverContext);
    }
    const operation = getOperationAST(document, params.operationName ?? undefined);
    if (
      operation == null ||
      operation.operation === OperationTypeNode.SUBSCRIPTION ||
      enveloped.validate(enveloped.schema, document).length > 0
    ) {
      return toYoga(req, res, body, serverContext);
    }
    const result = (await enveloped.execute({
      schema: enveloped.schema,
      document,
      operationName: params.operationName,
      variableValues: params.variables,
      contextValue: await enveloped.contextFactory(),
    })) as ExecutionResult;
    const answer = processRegularResult(result, CAPTURE, mediaType) as unknown as CapturedResponse;
    const text = answer.body ?? '';
    res.writeHead(answer.init.status ?? 200, {
      ...answer.init.headers,
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  };
}
