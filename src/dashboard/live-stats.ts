import { createClient } from 'graphql-ws/client';
import type { QueueStats } from '../contract.ts';
import type { Client } from 'graphql-ws/client';
import { GRAPHQL_PATH } from './graphql-api.ts';
import { sessionToken } from './session-token.ts';

/** A queue's counts as the queueStats subscription pushes them (the contract's QueueStats). */
export type LiveStats = QueueStats;

/**
 * Up to this many queues, each row is live through its own queueStats subscription (all on
 * one WebSocket, each queue costing the service a count query 4 times a second, shared by
 * every dashboard watching it); above it, the
 * whole list is polled every 2 s (pages/overview.ts) instead, one request for every queue.
 */
export const LIVE_QUEUES_MAX = 20;

interface GraphQLErrorJson {
  message: string;
  extensions?: { code?: unknown };
}

function errorCode(error: GraphQLErrorJson): string {
  const code = error.extensions?.code;
  return typeof code === 'string' ? code : 'ERROR';
}

const QUEUE_STATS_SUBSCRIPTION = `subscription QueueStats($queue: String!) {
  queueStats(queue: $queue) { queue ready delayed leased total oldestReadyAgeSeconds }
}`;

/**
 * Live queue counts through the API's `queueStats` subscription, all over one WebSocket
 * (graphql-ws): a page may watch many queues without using up the browser's six HTTP
 * connections per origin, which one Server-Sent Events stream per queue would. The socket
 * opens with the first watch and carries the session's token in its connectionParams
 * (browsers cannot set headers on a WebSocket); it reconnects after a drop.
 */
export class LiveStatsFeed {
  private client: Client | undefined;

  /**
   * Calls `onStats` with the queue's counts at once and on every change (at most 4 a second:
   * the subscription's pace), until the returned function is called. `onError` gets the
   * subscription's error (QUEUE_NOT_FOUND when the queue is deleted, FORBIDDEN, …), after
   * which nothing more comes.
   */
  watch(
    queue: string,
    onStats: (stats: LiveStats) => void,
    onError: (code: string, message: string) => void = () => undefined,
  ): () => void {
    return this.connection().subscribe<{ queueStats: LiveStats }>(
      { query: QUEUE_STATS_SUBSCRIPTION, variables: { queue } },
      {
        next: (result) => {
          if (result.data != null) onStats(result.data.queueStats);
          const first = result.errors?.[0];
          if (first !== undefined) onError(errorCode(first), first.message);
        },
        error: (error: unknown) => {
          // graphql-ws hands over the operation's errors, or the socket's close event.
          const first = Array.isArray(error)
            ? (error[0] as GraphQLErrorJson | undefined)
            : undefined;
          if (first !== undefined) onError(errorCode(first), first.message);
          else if (error instanceof CloseEvent)
            onError('UNAVAILABLE', error.reason || 'connection closed');
          else onError('UNAVAILABLE', 'live updates stopped');
        },
        complete: () => undefined,
      },
    );
  }

  /** Closes the socket, ending every watch (signing out). */
  close(): void {
    void this.client?.dispose();
    this.client = undefined;
  }

  private connection(): Client {
    this.client ??= createClient({
      url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${GRAPHQL_PATH}`,
      connectionParams: () => {
        const token = sessionToken.get();
        return token === undefined ? {} : { authorization: `Bearer ${token}` };
      },
      lazy: true,
      retryAttempts: Number.POSITIVE_INFINITY,
      // A refused token (4401) is not retried: the page asks for another one instead.
      shouldRetry: (event) => !(event instanceof CloseEvent && event.code === 4401),
    });
    return this.client;
  }
}
