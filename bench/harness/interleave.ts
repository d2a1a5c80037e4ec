import { median } from './stats.ts';

/** A system a bench compares; `key` 'raw' is the physical limit the others are set against. */
export interface BenchSystem {
  key: string;
  label: string;
}

/**
 * The systems a bench runs: all of them, or, with BENCH_SYSTEMS=key,key…, only those named
 * plus raw SQL, which always runs since every table's ratios are to it (e.g.
 * `BENCH_SYSTEMS=pgmq,holdline-engine` to set the engine against pgmq alone).
 */
export function selectedSystems<S extends BenchSystem>(all: readonly S[]): readonly S[] {
  const only = process.env.BENCH_SYSTEMS?.split(',').map((key) => key.trim());
  return only === undefined
    ? all
    : all.filter((system) => system.key === 'raw' || only.includes(system.key));
}

/** What every measurement carries: whose it is and which repetition. */
export interface RepeatedMeasurement {
  system: string;
  repetition: number;
}

/**
 * Measures every system once per repetition, interleaved (A B C, A B C, …) so that drift on
 * the machine over time hits every system alike. `onMeasured` reports each result as it
 * comes. `skip`, when given, is asked before each run: a reason (a string) leaves that run
 * out, reported through `onSkipped` (e.g. a rate ladder that stops climbing after a failure,
 * or a peer that is not there). Returns undefined when `signal` aborts (Ctrl-C): a cut-short
 * set has no results.
 */
export async function measureInterleaved<S extends BenchSystem, M>(options: {
  systems: readonly S[];
  repetitions: number;
  signal: AbortSignal;
  measure: (system: S, repetition: number) => Promise<M>;
  onMeasured: (measurement: M, system: S, repetition: number) => void;
  skip?: (system: S, repetition: number) => string | undefined;
  onSkipped?: (reason: string, system: S, repetition: number) => void;
}): Promise<M[] | undefined> {
  const measurements: M[] = [];
  for (let repetition = 1; repetition <= options.repetitions; repetition++) {
    for (const system of options.systems) {
      if (options.signal.aborted) return undefined;
      const skipped = options.skip?.(system, repetition);
      if (skipped !== undefined) {
        options.onSkipped?.(skipped, system, repetition);
        continue;
      }
      const m = await options.measure(system, repetition);
      if (options.signal.aborted) return undefined;
      measurements.push(m);
      options.onMeasured(m, system, repetition);
    }
  }
  return measurements;
}

/** Throughput of one system over its repetitions, and against raw. */
export interface RateSummary {
  system: string;
  label: string;
  runs: number;
  /** Per second: messages or sends, whatever the bench counts. */
  medianPerSecond: number;
  minPerSecond: number;
  maxPerSecond: number;
  /** Median per second over raw's median. */
  ratioToRaw: number;
  /** Median over repetitions of (this run / the same repetition's raw run). */
  medianPairedRatioToRaw: number;
  /**
   * Median per second over pgmq's median (the lean queue the engine is measured against,
   * issue 16); null when pgmq did not run in this comparison.
   */
  ratioToPgmq: number | null;
}

/**
 * Summarises each system's rate (`rateOf`) over its repetitions and against the systems keyed
 * 'raw' and 'pgmq' (when it ran). Returns each summary with the system's own measurements, for bench-specific columns.
 */
export function summariseRates<S extends BenchSystem, M extends RepeatedMeasurement>(
  systems: readonly S[],
  measurements: readonly M[],
  rateOf: (m: M) => number,
): { rate: RateSummary; runs: M[] }[] {
  const raw = measurements.filter((m) => m.system === 'raw');
  const rawMedian = median(raw.map(rateOf));
  const pgmq = measurements.filter((m) => m.system === 'pgmq');
  const pgmqMedian = pgmq.length === 0 ? null : median(pgmq.map(rateOf));
  return systems.map((system) => {
    const runs = measurements.filter((m) => m.system === system.key);
    const rates = runs.map(rateOf);
    const paired = runs.map((m) => {
      const rawRun = raw.find((r) => r.repetition === m.repetition);
      return rawRun === undefined ? Number.NaN : rateOf(m) / rateOf(rawRun);
    });
    return {
      runs,
      rate: {
        system: system.key,
        label: system.label,
        runs: runs.length,
        medianPerSecond: median(rates),
        minPerSecond: Math.min(...rates),
        maxPerSecond: Math.max(...rates),
        ratioToRaw: median(rates) / rawMedian,
        medianPairedRatioToRaw: median(paired),
        ratioToPgmq: pgmqMedian === null ? null : median(rates) / pgmqMedian,
      },
    };
  });
}
