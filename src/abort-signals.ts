/** A signal that aborts when any of its sources does, and how to detach it from them. */
export interface LinkedAbortSignal {
  signal: AbortSignal;
  /** Removes the listeners on the sources; call it once the signal is no longer needed. */
  dispose(): void;
}

/**
 * An AbortSignal that aborts, with the source's reason, when any of `sources` does (at once
 * when one already has). Unlike AbortSignal.any it leaves nothing behind once disposed.
 *
 * Why not AbortSignal.any: on Node 20 each call keeps an entry in every source's set of
 * dependent signals for as long as the source lives, garbage-collected or not. Called per
 * wait against a long-lived signal (a subscription's, the engine's closing signal, a
 * worker's stop signal) that grows the heap without bound: 3–8 MB per 100,000 calls that
 * survived GC, measured here, and the soak's service gained 62,741 WeakRefs in five minutes.
 */
export function linkAbortSignals(sources: readonly AbortSignal[]): LinkedAbortSignal {
  const controller = new AbortController();
  // Removing a listener that was never added is a no-op, so every source can be visited.
  const dispose = (): void => {
    for (const source of sources) source.removeEventListener('abort', onAbort);
  };
  function onAbort(this: AbortSignal): void {
    dispose();
    controller.abort(this.reason);
  }
  const aborted = sources.find((source) => source.aborted);
  if (aborted !== undefined) controller.abort(aborted.reason);
  else for (const source of sources) source.addEventListener('abort', onAbort);
  return { signal: controller.signal, dispose };
}
