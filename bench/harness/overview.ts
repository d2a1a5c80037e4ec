import { formatCount, formatFixed, markdownTable } from './report.ts';

/** One system's result in one workload, from a bench script's `"kind": "summary"` line. */
interface Cell {
  perSecond: number;
  ratioToRaw: number;
}

/**
 * Collects the summary JSON lines the bench scripts print and renders them as one markdown
 * table, system × workload: median per second and the ratio to that workload's raw limit.
 */
export class Overview {
  private readonly workloads: string[] = [];
  private readonly systems: string[] = [];
  private readonly cells = new Map<string, Cell>();

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
    const { bench, system, ratioToRaw } = record;
    const perSecond = record.medianPerSecond;
    if (typeof bench !== 'string' || typeof system !== 'string') return;
    if (typeof perSecond !== 'number' || typeof ratioToRaw !== 'number') return;
    if (!this.workloads.includes(bench)) this.workloads.push(bench);
    if (!this.systems.includes(system)) this.systems.push(system);
    this.cells.set(`${system}\u0000${bench}`, { perSecond, ratioToRaw });
  }

  /** The table, or undefined when no summary was seen. */
  render(): string | undefined {
    if (this.workloads.length === 0) return undefined;
    return markdownTable(
      ['system', ...this.workloads.map((w) => `${w}: /s (× raw)`)],
      this.systems.map((system) => [
        system,
        ...this.workloads.map((bench) => {
          const cell = this.cells.get(`${system}\u0000${bench}`);
          return cell === undefined
            ? '–'
            : `${formatCount(cell.perSecond)} (${formatFixed(cell.ratioToRaw, 2)}×)`;
        }),
      ]),
    );
  }
}
