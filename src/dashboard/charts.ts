import uPlot from 'uplot';
import { h } from './element.ts';

/** One line of a chart: its label, colour and a value per time (null: no data then). */
export interface ChartSeries {
  label: string;
  color: string;
  values: readonly (number | null)[];
}

/** A drawn chart: its element, and `destroy` to free it (listeners, canvas). */
export interface Chart {
  element: HTMLElement;
  destroy(): void;
}

/** The palette of the charts' lines, in the order series use them. */
export const CHART_COLORS = ['#2563eb', '#16a34a', '#9333ea', '#dc2626', '#d97706', '#0891b2'];

function data(at: readonly number[], series: readonly ChartSeries[]): uPlot.AlignedData {
  return [Float64Array.from(at), ...series.map((s) => s.values.slice())];
}

/**
 * A sparkline: lines only, no axes, legend or cursor, `width` × `height` CSS pixels. `at` is
 * in seconds since the epoch (uPlot's time unit).
 */
export function sparkline(
  at: readonly number[],
  series: readonly ChartSeries[],
  width = 120,
  height = 28,
): Chart {
  const element = h('span', { class: 'sparkline' });
  const plot = new uPlot(
    {
      width,
      height,
      pxAlign: false,
      cursor: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      legend: { show: false },
      scales: {
        x: { time: true },
        y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max)] },
      },
      axes: [{ show: false }, { show: false }],
      series: [
        {},
        ...series.map((s) => ({ stroke: s.color, width: 1.5, points: { show: false } })),
      ],
    },
    data(at, series),
    element,
  );
  return { element, destroy: () => plot.destroy() };
}

/**
 * A time-series chart with a title, time axis, value axis and a legend that follows the
 * cursor; `formatValue` writes the values on the axis and in the legend.
 */
export function timeChart(options: {
  title: string;
  at: readonly number[];
  series: readonly ChartSeries[];
  width: number;
  height?: number;
  /** Writes a value in the legend. */
  formatValue: (value: number) => string;
  /** Writes a value on the axis, where room is short. Default: formatValue. */
  formatAxis?: (value: number) => string;
}): Chart {
  const { formatValue } = options;
  const formatAxis = options.formatAxis ?? formatValue;
  const element = h('figure', { class: 'chart' });
  const plot = new uPlot(
    {
      title: options.title,
      width: options.width,
      height: options.height ?? 220,
      scales: {
        x: { time: true },
        y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max * 1.1)] },
      },
      axes: [{}, { values: (_u, splits) => splits.map((v) => formatAxis(v)), size: 70 }],
      series: [
        {},
        ...options.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          value: (_u: uPlot, v: number | null) => (v == null ? '—' : formatValue(v)),
        })),
      ],
    },
    data(options.at, options.series),
    element,
  );
  return { element, destroy: () => plot.destroy() };
}
