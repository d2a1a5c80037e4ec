/**
 * The Jepsen-style ledger of the reliability scenarios. Producers write a `send` line for
 * every message whose send returned an id (the service said it is committed); consumers
 * write a `deliver` line for every delivery they got and an `ack` line for every ack's
 * outcome. Each line is written with one synchronous write(2) as it happens, so a process
 * killed with SIGKILL leaves every record up to the kill (the kernel keeps the page; no
 * fsync is needed since the machine does not crash). The verdict is computed from the
 * lines alone.
 *
 * Clocks: lease windows use only the server's clock. A delivery's lease runs from its
 * start, `leaseExpiresAt − visibilityTimeout` (the database's now() of the receive
 * statement), to `leaseExpiresAt`; both come from PostgreSQL, so no skew between the test
 * process and the service can fake or hide an overlap. The `at` fields (Date.now() of the
 * process that wrote the line) serve only throughput figures and diagnostics.
 *
 * This module imports nothing from vitest: the fixture processes use its writer.
 */
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

/** A send that returned: the message is committed and must be delivered. */
export interface SendEntry {
  t: 'send';
  id: string;
  producer: string;
  seq: number;
  at: number;
}

/** A send that failed or whose answer never came: its outcome is unknown. */
export interface SendFailedEntry {
  t: 'send-failed';
  producer: string;
  seq: number;
  code: string;
  at: number;
}

/** One delivery as the consumer received it. */
export interface DeliverEntry {
  t: 'deliver';
  id: string;
  consumer: string;
  receipt: string;
  /** The server's leaseExpiresAt, in epoch milliseconds. */
  leaseExpiresAt: number;
  /** The lease length the receive asked for; the lease began this long before it expired. */
  visibilityTimeoutSeconds: number;
  attempts: number;
  at: number;
}

/** The outcome of acking one delivery: ok, or the error code (LEASE_LOST, NETWORK, …). */
export interface AckEntry {
  t: 'ack';
  id: string;
  consumer: string;
  receipt: string;
  ok: boolean;
  code?: string;
  at: number;
}

export type LedgerEntry = SendEntry | SendFailedEntry | DeliverEntry | AckEntry;

/** Appends ledger lines to one file, each with its own write(2). */
export class LedgerWriter {
  private fd: number | undefined;

  constructor(readonly file: string) {
    this.fd = openSync(file, 'a');
  }

  write(entry: LedgerEntry): void {
    if (this.fd === undefined) throw new Error(`ledger ${this.file} is closed`);
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Every entry of every `*.jsonl` file in `dir`. A line that does not parse (only possible
 * as the last line of a file whose writer died mid-write) is counted, not fatal.
 */
export function readLedger(dir: string): { entries: LedgerEntry[]; tornLines: number } {
  const entries: LedgerEntry[] = [];
  let tornLines = 0;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of readFileSync(path.join(dir, name), 'utf8').split('\n')) {
      if (line === '') continue;
      try {
        entries.push(JSON.parse(line) as LedgerEntry);
      } catch {
        tornLines++;
      }
    }
  }
  return { entries, tornLines };
}

/** Two deliveries of one message whose valid lease windows overlapped. */
export interface InLeaseDuplicate {
  id: string;
  first: DeliverEntry;
  second: DeliverEntry;
}

/** What the ledger shows. `lost` and `inLeaseDuplicates` must be empty. */
export interface Verdict {
  /** Distinct messages whose send returned. */
  sent: number;
  /** Of those, how many were delivered at least once. */
  delivered: number;
  /** Sends that failed or got no answer (outcome unknown: delivery optional). */
  sendsFailed: number;
  /** Messages delivered whose send never returned (committed, answer lost). */
  deliveredUnconfirmed: number;
  /** All deliveries, redeliveries included. */
  deliveries: number;
  /** Deliveries beyond the first of each message (after a lost lease: allowed). */
  redeliveries: number;
  /** Deliveries whose ack succeeded. */
  acked: number;
  /** Acks refused with LEASE_LOST (the lease had been reaped: fencing at work). */
  acksLeaseLost: number;
  /** Ids of sent messages never delivered. */
  lost: string[];
  inLeaseDuplicates: InLeaseDuplicate[];
  tornLines: number;
}

/** Start of a delivery's lease on the server's clock (see the module comment). */
export function leaseStart(d: DeliverEntry): number {
  return d.leaseExpiresAt - d.visibilityTimeoutSeconds * 1000;
}

/**
 * Judges a ledger: lost = sends that returned but were never delivered; in-lease
 * duplicate = two deliveries of one message (different receipts) whose lease windows
 * [start, expiry) overlap. A lease ended by an ack deletes the message, so it cannot be
 * delivered again; the scenarios never nack, so no lease ends early in any other way.
 */
export function judge(ledger: { entries: LedgerEntry[]; tornLines: number }): Verdict {
  const sent = new Set<string>();
  const byMessage = new Map<string, DeliverEntry[]>();
  let sendsFailed = 0;
  let deliveries = 0;
  let acked = 0;
  let acksLeaseLost = 0;
  for (const entry of ledger.entries) {
    switch (entry.t) {
      case 'send':
        sent.add(entry.id);
        break;
      case 'send-failed':
        sendsFailed++;
        break;
      case 'deliver': {
        deliveries++;
        const list = byMessage.get(entry.id) ?? [];
        list.push(entry);
        byMessage.set(entry.id, list);
        break;
      }
      case 'ack':
        if (entry.ok) acked++;
        else if (entry.code === 'LEASE_LOST') acksLeaseLost++;
        break;
    }
  }
  const inLeaseDuplicates: InLeaseDuplicate[] = [];
  for (const [id, list] of byMessage) {
    const sorted = [...list].sort((a, b) => leaseStart(a) - leaseStart(b));
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length; j++) {
        const first = sorted[i]!;
        const second = sorted[j]!;
        if (first.receipt === second.receipt) continue;
        if (leaseStart(second) < first.leaseExpiresAt)
          inLeaseDuplicates.push({ id, first, second });
      }
    }
  }
  const lost = [...sent].filter((id) => !byMessage.has(id));
  return {
    sent: sent.size,
    delivered: sent.size - lost.length,
    sendsFailed,
    deliveredUnconfirmed: [...byMessage.keys()].filter((id) => !sent.has(id)).length,
    deliveries,
    redeliveries: deliveries - byMessage.size,
    acked,
    acksLeaseLost,
    lost,
    inLeaseDuplicates,
    tornLines: ledger.tornLines,
  };
}

/**
 * Returned sends, or successful acks, per second in [from, to) (epoch ms, the clocks of the
 * processes that wrote the lines: one machine).
 */
export function ratePerSecond(
  entries: readonly LedgerEntry[],
  kind: 'send' | 'ack',
  from: number,
  to: number,
): number {
  let n = 0;
  for (const e of entries) {
    if (e.t === kind && (e.t !== 'ack' || e.ok) && e.at >= from && e.at < to) n++;
  }
  return n / ((to - from) / 1000);
}

/**
 * The one line a scenario prints: its counts and any extra figures, as key=value pairs so
 * that the table in docs/semantics.md ("Guarantees") can be filled from the output.
 */
export function verdictLine(
  scenario: string,
  verdict: Verdict,
  extra: Record<string, string | number> = {},
): string {
  const fields: Record<string, string | number> = {
    sent: verdict.sent,
    delivered: verdict.delivered,
    duplicatesInLease: verdict.inLeaseDuplicates.length,
    lost: verdict.lost.length,
    deliveries: verdict.deliveries,
    redeliveries: verdict.redeliveries,
    acked: verdict.acked,
    acksLeaseLost: verdict.acksLeaseLost,
    sendsFailed: verdict.sendsFailed,
    deliveredUnconfirmed: verdict.deliveredUnconfirmed,
    ...extra,
  };
  const pairs = Object.entries(fields).map(([k, v]) => `${k}=${v}`);
  return `[reliability] ${scenario}: ${pairs.join(' ')}`;
}
