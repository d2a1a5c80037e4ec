/**
 * Load for the reliability scenarios: producers and consumers that talk to real `holdline
 * serve` processes over HTTP, as any client would, and write the ledger as they go. The
 * fixture processes (which scenarios kill) run these loops, and so does the test process
 * for its final drain. Every loop is bounded by a deadline; this module imports nothing
 * from vitest.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LedgerWriter } from './ledger.ts';

const SEND = `mutation($q: String!, $p: JSON!) { send(queue: $q, message: { payload: $p }) { id } }`;
const RECEIVE = `mutation($q: String!, $max: Int, $vt: Int, $wait: Int) {
  receive(queue: $q, max: $max, visibilityTimeout: $vt, waitSeconds: $wait) {
    receipt leaseExpiresAt message { id attempts }
  }
}`;
const ACK = `mutation($r: String!) { ack(receipt: $r) }`;
const SEND_BATCH = `mutation($q: String!, $m: [SendInput!]!) { sendBatch(queue: $q, messages: $m) { id } }`;

/** How long an answer may take beyond a long poll's own wait before it counts as a hang. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How long a service that refused a connection is skipped by round-robin. */
const SKIP_DOWN_SERVICE_MS = 500;
const BACKOFF_INITIAL_MS = 25;
const BACKOFF_MAX_MS = 500;
/** Tries of one ack (on other services after a network error) before giving up on it. */
const ACK_TRIES = 5;

/** The result of one GraphQL request: its data, or the error code (NETWORK, TIMEOUT, …). */
export type CallResult<T> = { ok: true; data: T } | { ok: false; code: string; message: string };

interface Received {
  receive: { receipt: string; leaseExpiresAt: string; message: { id: string; attempts: number } }[];
}

/**
 * A set of service instances used round-robin, like a client behind a load balancer: each
 * request goes to the next instance; one whose connection failed is skipped for a moment.
 */
export class ServiceSet {
  private next = 0;
  private readonly downUntil: number[];

  constructor(readonly urls: readonly string[]) {
    if (urls.length === 0) throw new Error('no service URLs');
    this.downUntil = urls.map(() => 0);
  }

  /** POSTs one operation; never throws. `waitSeconds` extends the timeout for long polls. */
  async call<T>(
    query: string,
    variables: Record<string, unknown>,
    waitSeconds = 0,
  ): Promise<CallResult<T>> {
    const index = this.pick();
    try {
      const response = await fetch(`${this.urls[index]}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS + waitSeconds * 1000),
      });
      const body = (await response.json()) as {
        data?: T | null;
        errors?: { message: string; extensions?: { code?: string } }[];
      };
      const error = body.errors?.[0];
      if (error !== undefined || body.data == null) {
        return {
          ok: false,
          code: error?.extensions?.code ?? `HTTP_${response.status}`,
          message: error?.message ?? '',
        };
      }
      return { ok: true, data: body.data };
    } catch (error) {
      this.downUntil[index] = Date.now() + SKIP_DOWN_SERVICE_MS;
      const timedOut = error instanceof Error && error.name === 'TimeoutError';
      return { ok: false, code: timedOut ? 'TIMEOUT' : 'NETWORK', message: String(error) };
    }
  }

  private pick(): number {
    const now = Date.now();
    for (let k = 0; k < this.urls.length; k++) {
      const i = (this.next + k) % this.urls.length;
      if (this.downUntil[i]! <= now) {
        this.next = i + 1;
        return i;
      }
    }
    const i = this.next % this.urls.length;
    this.next = i + 1;
    return i;
  }
}

/** Capped exponential backoff with jitter, for a client retrying through an outage. */
class Backoff {
  private failures = 0;
  async wait(): Promise<void> {
    const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** this.failures);
    this.failures++;
    await sleep(ms * (0.5 + Math.random() / 2));
  }
  reset(): void {
    this.failures = 0;
  }
}

/** Options of {@link runProducer}. */
export interface ProducerOptions {
  services: ServiceSet;
  ledger: LedgerWriter;
  queue: string;
  producer: string;
  /** Sends that must return before the producer stops. */
  count: number;
  /** Sends in flight at once. */
  concurrency: number;
  /** Most sends started per second, all workers together; 0 for as fast as possible. */
  ratePerSecond: number;
  /** Epoch ms after which the producer stops even if `count` is not reached. */
  deadline: number;
  stopped?: () => boolean;
}

/**
 * Sends `{ producer, seq }` messages until `count` sends returned. A send that returned is
 * written to the ledger as `send`; a failed one as `send-failed` (its outcome is unknown:
 * it may have committed), and the producer backs off and carries on with a new message.
 */
export async function runProducer(options: ProducerOptions): Promise<void> {
  const { services, ledger, queue, producer } = options;
  const started = Date.now();
  let returned = 0;
  let inFlight = 0;
  let seq = 0;
  const worker = async (): Promise<void> => {
    const backoff = new Backoff();
    while (
      returned + inFlight < options.count &&
      Date.now() < options.deadline &&
      options.stopped?.() !== true
    ) {
      const mine = seq++;
      inFlight++;
      if (options.ratePerSecond > 0) {
        const due = started + (mine * 1000) / options.ratePerSecond;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      const result = await services.call<{ send: { id: string } }>(SEND, {
        q: queue,
        p: { producer, seq: mine },
      });
      inFlight--;
      if (result.ok) {
        returned++;
        ledger.write({ t: 'send', id: result.data.send.id, producer, seq: mine, at: Date.now() });
        backoff.reset();
      } else {
        ledger.write({ t: 'send-failed', producer, seq: mine, code: result.code, at: Date.now() });
        await backoff.wait();
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
}

/** Options of {@link runConsumer}. */
export interface ConsumerOptions {
  services: ServiceSet;
  ledger: LedgerWriter;
  queue: string;
  consumer: string;
  /** Messages per receive. */
  max: number;
  visibilityTimeoutSeconds: number;
  /** Long poll of each receive. */
  waitSeconds: number;
  /** Each delivery is "worked on" (its lease held) for a random time up to this. */
  workMsMax: number;
  /** Receive loops in this consumer. */
  concurrency: number;
  deadline: number;
  stopped: () => boolean;
}

/**
 * Receives, holds each lease for a random time, then acks, until stopped or the deadline.
 * Every delivery is written to the ledger the moment the receive returns (before any work,
 * so a kill during work leaves it recorded), and every ack's outcome when it is known. An
 * ack that fails for a network reason is retried on the next service while the lease lasts.
 */
export async function runConsumer(options: ConsumerOptions): Promise<void> {
  const { services, ledger, queue, consumer } = options;
  const handle = async (d: Received['receive'][number]): Promise<void> => {
    await sleep(Math.random() * options.workMsMax);
    const expires = Date.parse(d.leaseExpiresAt);
    for (let tries = 1; ; tries++) {
      const result = await services.call<{ ack: boolean }>(ACK, { r: d.receipt });
      const final =
        result.ok || result.code === 'LEASE_LOST' || tries >= ACK_TRIES || Date.now() >= expires;
      if (final) {
        ledger.write({
          t: 'ack',
          id: d.message.id,
          consumer,
          receipt: d.receipt,
          ok: result.ok,
          ...(result.ok ? {} : { code: result.code }),
          at: Date.now(),
        });
        return;
      }
      await sleep(BACKOFF_INITIAL_MS * tries);
    }
  };
  const loop = async (): Promise<void> => {
    const backoff = new Backoff();
    while (Date.now() < options.deadline && !options.stopped()) {
      const result = await services.call<Received>(
        RECEIVE,
        {
          q: queue,
          max: options.max,
          vt: options.visibilityTimeoutSeconds,
          wait: options.waitSeconds,
        },
        options.waitSeconds,
      );
      if (!result.ok) {
        await backoff.wait();
        continue;
      }
      backoff.reset();
      const at = Date.now();
      for (const d of result.data.receive) {
        ledger.write({
          t: 'deliver',
          id: d.message.id,
          consumer,
          receipt: d.receipt,
          leaseExpiresAt: Date.parse(d.leaseExpiresAt),
          visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
          attempts: d.message.attempts,
          at,
        });
      }
      await Promise.all(result.data.receive.map(handle));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
}

/**
 * Sends `count` messages in one sendBatch and records them as sent (the batch is atomic: it
 * returned, so all of them are committed). Returns their ids.
 */
export async function sendRecordedBatch(options: {
  services: ServiceSet;
  ledger: LedgerWriter;
  queue: string;
  producer: string;
  count: number;
}): Promise<string[]> {
  const { services, ledger, queue, producer } = options;
  const messages = Array.from({ length: options.count }, (_, seq) => ({
    payload: { producer, seq },
  }));
  const result = await services.call<{ sendBatch: { id: string }[] }>(SEND_BATCH, {
    q: queue,
    m: messages,
  });
  if (!result.ok) throw new Error(`sendBatch failed: ${result.code} ${result.message}`);
  const at = Date.now();
  result.data.sendBatch.forEach(({ id }, seq) =>
    ledger.write({ t: 'send', id, producer, seq, at }),
  );
  return result.data.sendBatch.map((m) => m.id);
}

/**
 * Receives up to `max` messages once and records them, without ever acking: a consumer that
 * takes leases and then dies. Returns the deliveries.
 */
export async function takeLeases(options: {
  services: ServiceSet;
  ledger: LedgerWriter;
  queue: string;
  consumer: string;
  max: number;
  visibilityTimeoutSeconds: number;
}): Promise<string[]> {
  const result = await options.services.call<Received>(RECEIVE, {
    q: options.queue,
    max: options.max,
    vt: options.visibilityTimeoutSeconds,
    wait: 0,
  });
  if (!result.ok) throw new Error(`receive failed: ${result.code} ${result.message}`);
  const at = Date.now();
  for (const d of result.data.receive) {
    options.ledger.write({
      t: 'deliver',
      id: d.message.id,
      consumer: options.consumer,
      receipt: d.receipt,
      leaseExpiresAt: Date.parse(d.leaseExpiresAt),
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
      attempts: d.message.attempts,
      at,
    });
  }
  return result.data.receive.map((d) => d.message.id);
}
