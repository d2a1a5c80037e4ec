/** An async iterator whose `return()` always exists and ends the stream promptly. */
export interface AbortableIterator<T> extends AsyncIterableIterator<T> {
  return(): Promise<IteratorResult<T, undefined>>;
}

/**
 * Wraps an async generator so that `return()` (a subscriber going away) takes effect at
 * once. A plain async generator queues `return()` behind a pending `next()`: one that is
 * waiting for the next message would keep running — holding its leases and its wait
 * registration — until a message arrived. Here `return()` first aborts `signal`, which the
 * generator's waits observe, so it reaches its `finally` within one statement.
 *
 * Errors thrown by the generator pass through `mapError` before reaching the transport,
 * because graphql-ws forwards a thrown error's message as is: it must already be safe to show.
 * The stream is in `registry` from creation until it ends, however it ends.
 */
export function abortableIterator<T>(
  start: (signal: AbortSignal) => AsyncGenerator<T, void, undefined>,
  options: {
    mapError: (error: unknown) => Error;
    registry: StreamRegistry;
    /**
     * Ends the stream too: the HTTP request's signal. yoga's node adapter aborts it when an
     * SSE client disconnects, but does not cancel the response stream, so without this an
     * SSE subscription would only notice on its next write.
     */
    endOn?: AbortSignal;
  },
): AbortableIterator<T> {
  const controller = new AbortController();
  const inner = start(controller.signal);
  const iterator: AbortableIterator<T> = {
    async next() {
      try {
        const result = await inner.next();
        if (result.done === true) options.registry.delete(iterator);
        return result;
      } catch (error) {
        options.registry.delete(iterator);
        throw options.mapError(error);
      }
    },
    async return() {
      options.registry.delete(iterator);
      controller.abort();
      try {
        await inner.return(undefined);
      } catch (error) {
        // Cleanup failed (the generator's finally threw): the subscriber is gone, so there
        // is no one to tell; mapError logs it when it is unexpected.
        options.mapError(error);
      }
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  options.registry.add(iterator);
  const endOn = options.endOn;
  if (endOn !== undefined) {
    const end = (): void => void iterator.return();
    if (endOn.aborted) end();
    else endOn.addEventListener('abort', end, { once: true });
  }
  return iterator;
}

/**
 * The open subscription streams of one GraphQL handler, so that shutdown can end them all
 * (each releasing what it holds) before the sockets close.
 */
export class StreamRegistry {
  private readonly streams = new Set<AbortableIterator<unknown>>();

  /** Called by abortableIterator when a stream opens. */
  add(stream: AbortableIterator<unknown>): void {
    this.streams.add(stream);
  }

  /** Called by abortableIterator when a stream ends. */
  delete(stream: AbortableIterator<unknown>): void {
    this.streams.delete(stream);
  }

  /** How many streams are open. */
  get size(): number {
    return this.streams.size;
  }

  /** Ends every open stream and waits until each has run its cleanup. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.streams].map((stream) => stream.return()));
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}
