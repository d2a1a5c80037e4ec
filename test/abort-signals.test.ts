import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { linkAbortSignals } from '../src/abort-signals.ts';

describe('linkAbortSignals', () => {
  it('aborts with the reason of whichever source aborts first, and only then', () => {
    const a = new AbortController();
    const b = new AbortController();
    const linked = linkAbortSignals([a.signal, b.signal]);
    expect(linked.signal.aborted).toBe(false);
    b.abort(new Error('b stopped'));
    expect(linked.signal.aborted).toBe(true);
    expect(linked.signal.reason).toEqual(new Error('b stopped'));
    // The first abort detached it from every source.
    expect(getEventListeners(a.signal, 'abort')).toHaveLength(0);
    a.abort(new Error('a stopped'));
    expect(linked.signal.reason).toEqual(new Error('b stopped'));
  });

  it('is aborted at once when a source already is, attaching to nothing', () => {
    const live = new AbortController();
    const linked = linkAbortSignals([live.signal, AbortSignal.abort('gone')]);
    expect(linked.signal.aborted).toBe(true);
    expect(linked.signal.reason).toBe('gone');
    expect(getEventListeners(live.signal, 'abort')).toHaveLength(0);
  });

  it('leaves a long-lived source as it found it once disposed, however many times it is linked', () => {
    const longLived = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      const wait = new AbortController();
      const linked = linkAbortSignals([longLived.signal, wait.signal]);
      if (i % 2 === 0) wait.abort();
      linked.dispose();
    }
    expect(getEventListeners(longLived.signal, 'abort')).toHaveLength(0);
    // Disposed, it no longer follows its sources.
    const other = new AbortController();
    const linked = linkAbortSignals([longLived.signal, other.signal]);
    linked.dispose();
    longLived.abort();
    expect(linked.signal.aborted).toBe(false);
  });
});
