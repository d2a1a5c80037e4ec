/**
 * Rows as plain text columns, left-aligned and padded to the widest cell, with an upper-case
 * header line: what the CLI prints for people, instead of console.table's `(index)` column
 * and quoted strings. Cells are printed as text (null and undefined as empty, dates as ISO 8601, objects as JSON); a row is one
 * line, so callers pass cells without newlines (JSON.stringify of a payload has none).
 */
export function textTable(
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
): string {
  const cells = [columns.map((c) => c.toUpperCase()), ...rows.map((row) => row.map(cellText))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    default:
      return JSON.stringify(value) ?? '';
  }
}
