/** Prints one JSON line to stdout: machine-readable results, one object per line. */
export function printJsonLine(record: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

/** A GitHub-flavoured markdown table; cells are printed as given. */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** An integer with thousands separators: 4765 → "4,765". */
export function formatCount(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a';
}

/** A number with `digits` decimals, or n/a. */
export function formatFixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** A ratio as a table cell ("0.82×"), or "–" when there is none (the peer did not run). */
export function formatRatio(ratio: number | null): string {
  return ratio === null ? '–' : `${formatFixed(ratio, 2)}×`;
}
