import { h } from './element.ts';

/**
 * The heading row of a table: one `th` per column title. A title ending in " #" is a numeric
 * column's: shown without the mark and right-aligned, as its cells are.
 */
export function tableHead(columns: readonly string[]): HTMLTableSectionElement {
  return h(
    'thead',
    null,
    h(
      'tr',
      null,
      columns.map((column) =>
        column.endsWith(' #')
          ? h('th', { scope: 'col', class: 'num' }, column.slice(0, -2))
          : h('th', { scope: 'col' }, column),
      ),
    ),
  );
}
