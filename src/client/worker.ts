import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { processMessage } from '../messaging-spans.ts';
import { AckBatcher } from './ack-batcher.ts';
import { HoldlineError, isHoldlineError } from './errors.ts';
import { retryDelayMs } from './retry.ts';
import type { Delivery, Message, WorkerTransport } from './types.ts';

/** Handlers running at once when `concurrency` is not given. */
export const CONCURRENCY_DEFAULT = 1;
/** Long-poll wait of each receive, in seconds (the contract's maximum). */
export const WAIT_SECONDS_DEFAULT = 20;
/** How long an ack waits for others to share its ackBatch call, in ms. */
export const ACK_DELAY_MS_DEFAULT = 5;
/** Most acks per ackBatch call. */
export const ACK_BATCH_SIZE_DEFAULT = 100;
/** How long stop() waits for running handlers before releasing their messages, in ms. */
export const STOP_TIMEOUT_MS_DEFAULT = 10_000;
/** Backoff after a failed receive: first cap and overall cap, in ms (full jitter). */
const ERROR_BACKOFF_INITIAL_MS = 100;
const ERROR_BACKOFF_MAX_MS = 5_000;
/** The lastError of a message given back by stop(). */
export const RELEASED_ERROR_TEXT = 'released: the worker stopped before the handler finished';

/** What a handler is given besides the message. */
export interface HandlerContext<Payload = unknown> {
  /**
   * Aborts when the handler should give up: its lease was lost (reason: a HoldlineError
   * with code LEASE_LOST; the message may already be with another consumer), or stop()
   * stopped waiting for it (reason: an Error named WorkerStoppedError; the message is being
   * released for redelivery). Pass it to fetch, database queries and timers.
   */
  signal: AbortSignal;
  /** The delivery: receipt and lease expiry as received (extensions are not reflected). */
  delivery: Delivery<Payload>;
}

/**
 * Does the work for one message. Resolving acks the message; throwing (or rejecting) nacks
 * it with the error's message as lastError, so the queue's backoff applies and, after
 * maxAttempts deliveries, the message is dead-lettered. Delivery is at-least-once: a
 * handler must tolerate seeing a message again.
 */
export type MessageHandler<Payload = unknown> = (
  message: Message<Payload>,
  context: HandlerContext<Payload>,
) => unknown;

/** A pino-compatible logger, for the worker's warnings. */
export interface WorkerLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Options of a worker; every field is optional. */
export interface ConsumeOptions {
  /** Handlers running at once, 1 to 1000. Default {@link CONCURRENCY_DEFAULT}. */
  concurrency?: number;
  /**
   * Lease length of each delivery in seconds, 1 to 43,200; the lease is extended by this
   * much every third of it while the handler runs. Default: the queue's visibilityTimeout,
   * read once when the worker starts.
   */
  visibilityTimeoutSeconds?: number;
  /** Long-poll wait of each receive, 1 to 20 s. Default {@link WAIT_SECONDS_DEFAULT}. */
  waitSeconds?: number;
  /** How long an ack waits to share a batch, in ms. Default {@link ACK_DELAY_MS_DEFAULT}. */
  ackDelayMs?: number;
  /** Most acks per call, 1 to 1000. Default {@link ACK_BATCH_SIZE_DEFAULT}. */
  ackBatchSize?: number;
  /** stop()'s default timeoutMs. Default {@link STOP_TIMEOUT_MS_DEFAULT}. */
  stopTimeoutMs?: number;
  /** Gets a line per failure the worker survives; without it (and without a `workerError`
   * listener) failures become process warnings. */
  logger?: WorkerLogger;
}

/** Options of {@link QueueWorker.stop}. */
export interface StopOptions {
  /** How long to wait for running handlers before releasing their messages, in ms. */
  timeoutMs?: number;
}

/** The operations a worker makes on the queue, as named in `workerError` events. */
export type WorkerOperation = 'getQueue' | 'receive' | 'ack' | 'nack' | 'extendLease';

/** Events of a {@link QueueWorker}, for logs and metrics. */
export interface QueueWorkerEvents<Payload = unknown> {
  /** A handler resolved and its ack was accepted. durationMs: the handler's run time. */
  processed: [event: { delivery: Delivery<Payload>; durationMs: number }];
  /**
   * A handler threw (its message was nacked unless its lease was lost), or it resolved after
   * its lease was lost for certain (nothing was acked; the message will come again).
   */
  failed: [event: { delivery: Delivery<Payload>; error: unknown; durationMs: number }];
  /** A delivery's lease was lost while its handler ran; its signal was aborted. */
  leaseLost: [event: { delivery: Delivery<Payload>; error: HoldlineError }];
  /** stop() gave a delivery back (nack with delaySeconds 0) for immediate redelivery. */
  released: [event: { delivery: Delivery<Payload> }];
  /** A call to the queue failed and the worker carried on (it retries receives with backoff). */
  workerError: [event: { operation: WorkerOperation; error: unknown }];
}

/** One delivery being handled. */
interface Job<Payload> {
  delivery: Delivery<Payload>;
  controller: AbortController;
  /** running: the handler runs; finished: it settled; released: stop() gave it back. */
  state: 'running' | 'finished' | 'released';
  /** Set once the service refused an extension (LEASE_LOST) or the lease ran out locally. */
  leaseLost: 'refused' | 'ran-out' | undefined;
  extendTimer: NodeJS.Timeout | undefined;
  deadlineTimer: NodeJS.Timeout | undefined;
  /** Resolves when the handler has settled. */
  handled: Promise<void>;
}

/**
 * A worker loop on one queue, written once for any {@link WorkerTransport} (the HTTP client
 * or the in-process client):
 * - up to `concurrency` handlers run at once; messages arrive through long-poll receives
 *   asking for exactly the free slots, so an idle worker makes one request per waitSeconds
 *   and a busy one none;
 * - each lease is extended every third of the visibility timeout while its handler runs;
 *   when an extension is refused (LEASE_LOST) or the lease runs out without one, the
 *   handler's signal aborts (the trap of a job that keeps running while its retry runs);
 * - a handler that resolves is acked (acks are coalesced into ackBatch calls); one that
 *   throws is nacked with its error text, so the queue's backoff and dead-lettering apply;
 * - each handler call runs in an OpenTelemetry `process <queue>` span, a child of the
 *   sender's context from the message headers (a no-op without an SDK; messaging-spans.ts);
 * - stop() stops receiving, waits for running handlers up to a timeout, then releases the
 *   rest (nack with delaySeconds 0) so they are redelivered at once rather than after their
 *   lease; a crashed process's messages come back when their leases expire.
 * Starts on construction; stop() any number of times.
 */
export class QueueWorker<Payload = unknown> extends EventEmitter<QueueWorkerEvents<Payload>> {
  /** Resolves when the worker has stopped (after stop() completes). */
  readonly stopped: Promise<void>;
  private readonly concurrency: number;
  private readonly waitSeconds: number;
  private readonly stopTimeoutMs: number;
  private readonly acks: AckBatcher;
  private readonly jobs = new Set<Job<Payload>>();
  /** nacks and releases still being answered; stop() waits for them. */
  private readonly settling = new Set<Promise<void>>();
  private readonly stopController = new AbortController();
  private readonly loop: Promise<void>;
  private visibilityTimeoutSeconds: number | undefined;
  private slotFreed: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  private resolveStopped!: () => void;

  constructor(
    private readonly transport: WorkerTransport,
    readonly queue: string,
    private readonly handler: MessageHandler<Payload>,
    private readonly options: ConsumeOptions = {},
  ) {
    super();
    this.concurrency = integerOption(
      options.concurrency,
      'concurrency',
      CONCURRENCY_DEFAULT,
      1,
      1000,
    );
    this.waitSeconds = integerOption(
      options.waitSeconds,
      'waitSeconds',
      WAIT_SECONDS_DEFAULT,
      1,
      20,
    );
    this.stopTimeoutMs = integerOption(
      options.stopTimeoutMs,
      'stopTimeoutMs',
      STOP_TIMEOUT_MS_DEFAULT,
      0,
      2 ** 31 - 1,
    );
    if (options.visibilityTimeoutSeconds !== undefined) {
      this.visibilityTimeoutSeconds = integerOption(
        options.visibilityTimeoutSeconds,
        'visibilityTimeoutSeconds',
        0,
        1,
        43_200,
      );
    }
    this.acks = new AckBatcher(
      (receipts) => this.sendAcks(receipts),
      integerOption(options.ackDelayMs, 'ackDelayMs', ACK_DELAY_MS_DEFAULT, 0, 60_000),
      integerOption(options.ackBatchSize, 'ackBatchSize', ACK_BATCH_SIZE_DEFAULT, 1, 1000),
    );
    this.stopped = new Promise<void>((resolve) => (this.resolveStopped = resolve));
    this.loop = this.run();
  }

  /** Handlers running now. */
  get inFlight(): number {
    return this.jobs.size;
  }

  /** True once stop() was called. */
  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  /**
   * Stops taking work at once (a long poll in progress is abandoned), waits up to
   * `timeoutMs` (default the consume option stopTimeoutMs) for running handlers, then aborts
   * the signals of those still running and releases their messages (nack with delaySeconds
   * 0: redelivered at once; the delivery still counts as an attempt). Waits for pending acks
   * and nacks, then resolves. A handler that ignores its signal may still be running then;
   * its result is discarded. Safe to call twice (the first call's timeout applies).
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.timeoutMs ?? this.stopTimeoutMs);
    return this.stopping;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.visibilityTimeoutSeconds === undefined && !this.stopController.signal.aborted) {
      try {
        const queue = await this.transport.getQueue(this.queue);
        if (queue === null) {
          throw new HoldlineError('QUEUE_NOT_FOUND', `queue "${this.queue}" does not exist`);
        }
        this.visibilityTimeoutSeconds = queue.config.visibilityTimeoutSeconds;
      } catch (error) {
        this.report('getQueue', error);
        await this.pause(failures++);
      }
    }
    failures = 0;
    while (!this.stopController.signal.aborted) {
      const free = this.concurrency - this.jobs.size;
      if (free <= 0) {
        await this.nextFreeSlot();
        continue;
      }
      let deliveries: Delivery<Payload>[];
      try {
        deliveries = await this.transport.receive<Payload>(this.queue, {
          max: free,
          visibilityTimeoutSeconds: this.visibilityTimeoutSeconds,
          waitSeconds: this.waitSeconds,
          signal: this.stopController.signal,
        });
        failures = 0;
      } catch (error) {
        if (this.stopController.signal.aborted) break;
        this.report('receive', error);
        await this.pause(failures++);
        continue;
      }
      for (const delivery of deliveries) {
        // Leased in the instant stop() began: give it straight back.
        if (this.stopController.signal.aborted) this.release(delivery);
        else this.start(delivery);
      }
    }
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.stopController.abort();
    this.slotFreed?.();
    await this.loop;
    const running = [...this.jobs].map((job) => job.handled);
    if (running.length > 0) {
      const timeout = new AbortController();
      await Promise.race([
        Promise.all(running),
        sleep(timeoutMs, undefined, { signal: timeout.signal }).catch(() => undefined),
      ]);
      timeout.abort();
    }
    for (const job of this.jobs) {
      if (job.state !== 'running') continue;
      job.state = 'released';
      this.clearTimers(job);
      job.controller.abort(workerStoppedError());
      this.release(job.delivery);
    }
    this.jobs.clear();
    await this.acks.drain();
    while (this.settling.size > 0) await Promise.all(this.settling);
    this.resolveStopped();
  }

  private start(delivery: Delivery<Payload>): void {
    const visibilityMs = this.visibilityTimeoutSeconds! * 1000;
    const job: Job<Payload> = {
      delivery,
      controller: new AbortController(),
      state: 'running',
      leaseLost: undefined,
      extendTimer: undefined,
      deadlineTimer: undefined,
      handled: Promise.resolve(),
    };
    this.jobs.add(job);
    // The lease began a moment before the response arrived; the first extension comes long
    // before this deadline, which then moves to (extension request time + lease length).
    this.armDeadline(job, Date.now() + visibilityMs);
    this.scheduleExtension(job);
    job.handled = this.handle(job);
  }

  private async handle(job: Job<Payload>): Promise<void> {
    const started = performance.now();
    let failure: { error: unknown } | undefined;
    const { message } = job.delivery;
    try {
      // A `process <queue>` span, child of the message's creation context (messaging-spans.ts).
      await processMessage(message, () => this.handler(message, handlerContext(job)));
    } catch (error) {
      failure = { error };
    }
    const durationMs = performance.now() - started;
    this.clearTimers(job);
    if (job.state === 'released') return;
    job.state = 'finished';
    this.jobs.delete(job);
    this.slotFreed?.();
    this.track(this.settle(job, failure, durationMs));
  }

  /** Acks or nacks a finished job and reports it. */
  private async settle(
    job: Job<Payload>,
    failure: { error: unknown } | undefined,
    durationMs: number,
  ): Promise<void> {
    const { delivery } = job;
    if (job.leaseLost === 'refused') {
      // The service said the lease is gone: an ack or nack could only fail the same way.
      const error: unknown = failure?.error ?? job.controller.signal.reason;
      this.notify('failed', { delivery, error, durationMs });
      return;
    }
    if (failure === undefined) {
      const outcome = await this.acks.add(delivery.receipt);
      if (outcome.ok) this.notify('processed', { delivery, durationMs });
      return;
    }
    try {
      await this.transport.nack(delivery.receipt, { error: errorText(failure.error) });
    } catch (error) {
      this.report('nack', error);
    }
    this.notify('failed', { delivery, error: failure.error, durationMs });
  }

  /** ackBatch for the batcher; a short count means some leases were lost meanwhile. */
  private async sendAcks(receipts: string[]): Promise<number> {
    try {
      const acked = await this.transport.ackBatch(receipts);
      if (acked < receipts.length) {
        this.report(
          'ack',
          new HoldlineError(
            'LEASE_LOST',
            `${receipts.length - acked} of ${receipts.length} acks found their lease lost; those messages will be delivered again`,
          ),
        );
      }
      return acked;
    } catch (error) {
      this.report('ack', error);
      throw error;
    }
  }

  /** Gives a delivery back for immediate redelivery. */
  private release(delivery: Delivery<Payload>): void {
    this.track(
      this.transport.nack(delivery.receipt, { delaySeconds: 0, error: RELEASED_ERROR_TEXT }).then(
        () => this.notify('released', { delivery }),
        (error: unknown) => {
          // LEASE_LOST: it is back in the queue already. Otherwise its lease will expire.
          if (!isHoldlineError(error, 'LEASE_LOST')) this.report('nack', error);
        },
      ),
    );
  }

  private scheduleExtension(job: Job<Payload>): void {
    const intervalMs = (this.visibilityTimeoutSeconds! * 1000) / 3;
    job.extendTimer = setTimeout(() => void this.extend(job), intervalMs);
  }

  private async extend(job: Job<Payload>): Promise<void> {
    if (job.state !== 'running' || job.leaseLost !== undefined) return;
    const seconds = this.visibilityTimeoutSeconds!;
    const requestedAt = Date.now();
    try {
      await this.transport.extendLease(job.delivery.receipt, seconds);
      if (job.state !== 'running' || job.leaseLost !== undefined) return;
      this.armDeadline(job, requestedAt + seconds * 1000);
    } catch (error) {
      if (job.state !== 'running' || job.leaseLost !== undefined) return;
      if (isHoldlineError(error, 'LEASE_LOST')) {
        this.loseLease(job, 'refused', error);
        return;
      }
      // Transient: the next extension may still make it before the deadline.
      this.report('extendLease', error);
    }
    this.scheduleExtension(job);
  }

  private armDeadline(job: Job<Payload>, deadline: number): void {
    clearTimeout(job.deadlineTimer);
    job.deadlineTimer = setTimeout(
      () =>
        this.loseLease(
          job,
          'ran-out',
          new HoldlineError('LEASE_LOST', 'the lease ran out before it could be extended'),
        ),
      Math.max(0, deadline - Date.now()),
    );
  }

  private loseLease(job: Job<Payload>, how: 'refused' | 'ran-out', error: HoldlineError): void {
    if (job.state !== 'running' || job.leaseLost !== undefined) return;
    job.leaseLost = how;
    this.clearTimers(job);
    job.controller.abort(error);
    this.notify('leaseLost', { delivery: job.delivery, error });
  }

  private clearTimers(job: Job<Payload>): void {
    clearTimeout(job.extendTimer);
    clearTimeout(job.deadlineTimer);
    job.extendTimer = undefined;
    job.deadlineTimer = undefined;
  }

  private nextFreeSlot(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.slotFreed = () => {
        this.slotFreed = undefined;
        resolve();
      };
    });
  }

  /** Waits after the n-th failure in a row (capped, jittered); ends early on stop(). */
  private async pause(failures: number): Promise<void> {
    const delay = retryDelayMs(failures, ERROR_BACKOFF_INITIAL_MS, ERROR_BACKOFF_MAX_MS);
    await sleep(delay, undefined, { signal: this.stopController.signal }).catch(() => undefined);
  }

  private track(work: Promise<void>): void {
    this.settling.add(work);
    void work.finally(() => this.settling.delete(work));
  }

  private report(operation: WorkerOperation, error: unknown): void {
    this.options.logger?.warn(
      { err: error, queue: this.queue, operation },
      'holdline worker operation failed',
    );
    if (this.listenerCount('workerError') > 0) {
      this.notify('workerError', { operation, error });
    } else if (this.options.logger === undefined) {
      process.emitWarning(`${operation} on queue "${this.queue}" failed: ${errorText(error)}`, {
        type: 'HoldlineWorkerWarning',
      });
    }
  }

  /** Emits an event; a listener that throws must not break the worker's bookkeeping. */
  private notify<E extends keyof QueueWorkerEvents<Payload>>(
    event: E,
    ...args: QueueWorkerEvents<Payload>[E]
  ): void {
    try {
      (this.emit as (event: E, ...args: QueueWorkerEvents<Payload>[E]) => boolean)(event, ...args);
    } catch (error) {
      process.emitWarning(`a "${String(event)}" listener threw: ${errorText(error)}`, {
        type: 'HoldlineWorkerWarning',
      });
    }
  }
}

/**
 * The context of a job's handler. Its signal is made on first use: Node builds an
 * AbortSignal lazily, and building one per message was a twentieth of a no-op worker's CPU
 * (bench/drain.ts) for handlers that never look at it. Aborting a controller whose signal
 * was never made costs nothing.
 */
function handlerContext<Payload>(job: Job<Payload>): HandlerContext<Payload> {
  return {
    get signal() {
      return job.controller.signal;
    },
    delivery: job.delivery,
  };
}

/** The workers a client started, so that closing the client stops them. */
export class WorkerGroup {
  private readonly workers = new Set<{ stop(): Promise<void> }>();

  /** Tracks `worker` until it has stopped; returns it. */
  add<W extends { stop(): Promise<void>; stopped: Promise<void> }>(worker: W): W {
    this.workers.add(worker);
    void worker.stopped.then(() => this.workers.delete(worker));
    return worker;
  }

  /** Stops every tracked worker (each with its own stopTimeoutMs) and waits for them. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.workers].map((worker) => worker.stop()));
  }
}

/** A handler's failure as the lastError text kept with the message. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message === '' ? error.name : error.message;
  return String(error);
}

function workerStoppedError(): Error {
  const error = new Error(RELEASED_ERROR_TEXT);
  error.name = 'WorkerStoppedError';
  return error;
}

function integerOption(
  value: number | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new HoldlineError(
      'BAD_USER_INPUT',
      `${name} must be an integer from ${min} to ${max}; got ${String(value)}`,
    );
  }
  return value;
}
