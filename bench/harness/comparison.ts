import type { BenchDatabase } from './database.ts';
import { measureInterleaved } from './interleave.ts';
import type { BenchSystem } from './interleave.ts';
import { describeMachine, machineFacts } from './machine.ts';
import type { QuietCheck } from './quiet.ts';
import { printJsonLine } from './report.ts';

/**
 * What {@link runComparison} needs of every measurement: how idle the machine was. A type,
 * not an interface: only a type literal passes for printJsonLine's Record<string, unknown>.
 */
export type QuietMeasurement = { quietBeforeStart: QuietCheck };

/** A finished comparison, as its caption sees it. */
export interface ComparisonRuns<M> {
  measurements: readonly M[];
  /** How many runs started on a machine that was quiet (`quietBeforeStart.quiet`). */
  quietRuns: number;
}

/** What one bench script compares, and how it reports it. */
export interface Comparison<
  S extends BenchSystem,
  M extends QuietMeasurement,
  Summary extends object,
> {
  /**
   * The bench's name: `bench` in every JSON line, and the script's file name in bench/
   * without `.ts`, for the command line printed above the table.
   */
  name: string;
  /** Whether this is a smoke run; the printed command line then carries --smoke. */
  smoke: boolean;
  /** The bench database, set up; its signal stops the comparison. */
  database: BenchDatabase;
  /**
   * The workload's sizes and settings: the machine line carries them after the machine,
   * followed by `repetitions` and `smoke`.
   */
  parameters: Record<string, unknown>;
  systems: readonly S[];
  repetitions: number;
  measure: (database: BenchDatabase, system: S, repetition: number) => Promise<M>;
  /** Fields every measurement line carries between its `kind` and the measurement's own. */
  measurementFields?: Record<string, unknown>;
  /**
   * Asked before each run: a reason leaves the run out (no measurement line; a progress line
   * says why). Default: every run happens.
   */
  skip?: (system: S, repetition: number) => string | undefined;
  /** What the progress line on stderr says of a measurement, after "1/5 system:". */
  progress: (measurement: M) => string;
  /** One summary JSON line each, printed in this order. */
  summarise: (measurements: readonly M[]) => Summary[];
  /** The text above the machine line. */
  caption: (runs: ComparisonRuns<M>) => string;
  /** The markdown table that ends the report. */
  table: (summaries: readonly Summary[]) => string;
}

/**
 * Runs a bench script's comparison and prints its report. First a JSON line of the machine
 * and the parameters; then each system is measured in every repetition, interleaved
 * ({@link measureInterleaved}), each run printing a JSON measurement line to stdout and a
 * progress line to stderr as it ends; then one JSON summary line per summary (bench/run.ts
 * builds its overview from these), the caption, the machine, the command that reproduces the
 * run, and the table. Returns the measurements, or undefined when the database's signal
 * aborted (Ctrl-C): then nothing is summarised.
 */
export async function runComparison<
  S extends BenchSystem,
  M extends QuietMeasurement,
  Summary extends object,
>(comparison: Comparison<S, M, Summary>): Promise<M[] | undefined> {
  const { name, database, repetitions } = comparison;
  const machine = await machineFacts(database.admin);
  printJsonLine({
    bench: name,
    kind: 'machine',
    ...machine,
    ...comparison.parameters,
    repetitions,
    smoke: comparison.smoke,
  });

  const measurements = await measureInterleaved({
    systems: comparison.systems,
    repetitions,
    signal: database.signal,
    measure: (system, repetition) => comparison.measure(database, system, repetition),
    onMeasured: (m, system, repetition) => {
      printJsonLine({ bench: name, kind: 'measurement', ...comparison.measurementFields, ...m });
      process.stderr.write(
        `${repetition}/${repetitions} ${system.key}: ${comparison.progress(m)}\n`,
      );
    },
    skip: comparison.skip,
    onSkipped: (reason, system, repetition) => {
      process.stderr.write(`${repetition}/${repetitions} ${system.key}: skipped, ${reason}\n`);
    },
  });
  if (measurements === undefined) {
    process.stderr.write('interrupted: no results\n');
    return undefined;
  }

  const summaries = comparison.summarise(measurements);
  for (const s of summaries) printJsonLine({ bench: name, kind: 'summary', ...s });
  const command = `npx tsx bench/${name}.ts${comparison.smoke ? ' --smoke' : ''}`;
  const quietRuns = measurements.filter((m) => m.quietBeforeStart.quiet).length;
  process.stdout.write(
    `\n${comparison.caption({ measurements, quietRuns })}\n` +
      `${describeMachine(machine)}\n\`${command}\`\n\n` +
      `${comparison.table(summaries)}\n`,
  );
  return measurements;
}
