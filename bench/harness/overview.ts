import { formatCount, formatFixed, markdownTable } from './report.ts';

/** One system's throughput in one workload, from a summary line with `medianPerSecond`. */
interface RateCell {
  perSecond: number;
  ratioToRaw: number;
  /** Against pgmq in the same workload, when it ran there. */
  ratioToPgmq: number | null;
}

/** One system's delivery latency in one workload, from a summary line of bench/latency.ts. */
interface LatencyCell {
  p50Ms: number;
  p99Ms: number;
}

/** Rows (systems) and columns (workloads) in the order first seen, and the cells between. */
class Grid<Cell> {
  readonly workloads: string[] = [];
  readonly systems: string[] = [];
  private readonly cells = new Map<string, Cell>();

  set(system: string, workload: string, cell: Cell): void {
    if (!this.workloads.includes(workload)) this.workloads.push(workload);
    if (!this.systems.includes(system)) this.systems.push(system);
    this.cells.set(`${system}\u0000${workload}`, cell);
  }

  /** A markdown table, or undefined when empty. */
  render(
    heading: (workload: string) => string,
    format: (cell: Cell) => string,
  ): string | undefined {
    if (this.workloads.length === 0) return undefined;
    return markdownTable(
      ['system', ...this.workloads.map(heading)],
      this.systems.map((system) => [
        system,
        ...this.workloads.map((workload) => {
          const cell = this.cells.get(`${system}\u0000${workload}`);
          return cell === undefined ? '–' : format(cell);
        }),
      ]),
    );
  }
}

/**
 * Collects the summary JSON lines the bench scripts print and renders them as tables,
 * system × workload: median per second with the ratio to that workload's raw limit, and,
 * for the latency workload, median commit→handler p50 and p99. A workload is the line's
 * `workload` field where it has one (depth: one per queue depth), else its `bench`.
 */
export class Overview {
  private readonly rates = new Grid<RateCell>();
  private readonly latencies = new Grid<LatencyCell>();

  /** Feeds one line of a script's stdout; anything but a summary line is ignored. */
  add(line: string): void {
    if (!line.startsWith('{')) return;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (record.kind !== 'summary') return;
    const { system, ratioToRaw, ratioToPgmq } = record;
    const workload = record.workload ?? record.bench;
    if (typeof workload !== 'string' || typeof system !== 'string') return;
    const perSecond = record.medianPerSecond;
    if (typeof perSecond === 'number' && typeof ratioToRaw === 'number') {
      this.rates.set(system, workload, {
        perSecond,
        ratioToRaw,
        ratioToPgmq: typeof ratioToPgmq === 'number' ? ratioToPgmq : null,
      });
    }
    const p50Ms = record.medianCommitToHandlerP50Ms;
    const p99Ms = record.medianCommitToHandlerP99Ms;
    if (typeof p50Ms === 'number' && typeof p99Ms === 'number') {
      this.latencies.set(system, workload, { p50Ms, p99Ms });
    }
  }

  /**
   * Median per second (× raw, and × pgmq where pgmq ran) per system and workload, or
   * undefined when none was seen.
   */
  renderRates(): string | undefined {
    return this.rates.render(
      (workload) => `${workload}: /s (× raw; × pgmq)`,
      (cell) =>
        `${formatCount(cell.perSecond)} (${formatFixed(cell.ratioToRaw, 2)}×` +
        `${cell.ratioToPgmq === null ? '' : `; ${formatFixed(cell.ratioToPgmq, 2)}×`})`,
    );
  }

  /** Median p50 / p99 ms per system and workload, or undefined when none was seen. */
  renderLatencies(): string | undefined {
    return this.latencies.render(
      (workload) => `${workload}: p50 / p99 ms`,
      (cell) => `${formatFixed(cell.p50Ms, 2)} / ${formatFixed(cell.p99Ms, 2)}`,
    );
  }
}
