/** How numbers, durations and times read on the dashboard. */

const COUNT = new Intl.NumberFormat('en-US');
const RATE = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** A count with thousands separators: 12,345. */
export function formatCount(value: number): string {
  return COUNT.format(value);
}

/** Messages per second, one decimal: "3.5/s"; "—" when unknown. */
export function formatRate(perSecond: number | null | undefined): string {
  return perSecond == null ? '—' : `${RATE.format(perSecond)}/s`;
}

/**
 * A duration in seconds in its largest two units: "45 s", "3 min 20 s", "2 h", "3 d 4 h";
 * under 10 s with a decimal, under 1 s in milliseconds; "—" when null.
 */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds == null) return '—';
  if (seconds < 1) return `${RATE.format(seconds * 1000)} ms`;
  if (seconds < 10) return `${RATE.format(seconds)} s`;
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['min', 60],
    ['s', 1],
  ];
  const whole = Math.round(seconds);
  const first = units.findIndex(([, size]) => whole >= size);
  const [bigUnit, bigSize] = units[first]!;
  const big = Math.floor(whole / bigSize);
  const next = units[first + 1];
  const small = next === undefined ? 0 : Math.floor((whole - big * bigSize) / next[1]);
  return small === 0 || next === undefined
    ? `${big} ${bigUnit}`
    : `${big} ${bigUnit} ${small} ${next[0]}`;
}

/** A duration in one unit, for a chart's axis: "250 ms", "12 s", "4.5 min", "2 h". */
export function formatSecondsShort(seconds: number): string {
  if (seconds === 0) return '0';
  if (seconds < 1) return `${RATE.format(seconds * 1000)} ms`;
  if (seconds < 60) return `${RATE.format(seconds)} s`;
  if (seconds < 3_600) return `${RATE.format(seconds / 60)} min`;
  if (seconds < 86_400) return `${RATE.format(seconds / 3_600)} h`;
  return `${RATE.format(seconds / 86_400)} d`;
}

/** A time as the browser's local date and time to the second: "2026-12-08 14:03:21"; "—" when null. */
export function formatTime(iso: string | null | undefined): string {
  if (iso == null) return '—';
  const date = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A JSON value on one line, cut at `max` characters with an ellipsis. */
export function jsonPreview(value: unknown, max = 120): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A JSON value indented for reading. */
export function jsonPretty(value: unknown): string {
  return JSON.stringify(value, null, 2) ?? 'null';
}
