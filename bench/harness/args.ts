/** Options every bench script takes, and the numeric options a script declares. */
export interface BenchArgs<NumericOption extends string = never> {
  /** Tiny N and one repetition: keeps bench/ from rotting in CI, measures nothing. */
  smoke: boolean;
  /** The declared numeric options that were given (`--rate 500` or `--rate=500`). */
  numbers: Partial<Record<NumericOption, number>>;
}

/**
 * Parses a bench script's arguments: `--smoke`, plus the positive numbers named in
 * `numericOptions` (without their dashes). An unknown argument, or a value that is not a
 * positive number, exits non-zero naming it and the options there are.
 */
export function parseBenchArgs<NumericOption extends string = never>(
  argv: readonly string[],
  numericOptions: readonly NumericOption[] = [],
): BenchArgs<NumericOption> {
  const args: BenchArgs<NumericOption> = { smoke: false, numbers: {} };
  const usage = ['--smoke', ...numericOptions.map((o) => `--${o} N`)].join(', ');
  function fail(message: string): never {
    process.stderr.write(`${message}; the options are ${usage}\n`);
    process.exit(2);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--smoke') {
      args.smoke = true;
      continue;
    }
    const [flag = '', inline] = arg.split('=', 2);
    const option = numericOptions.find((o) => flag === `--${o}`);
    if (option === undefined) fail(`unknown argument ${JSON.stringify(arg)}`);
    const text = inline ?? argv[++i];
    const value = Number(text);
    if (text === undefined || text.trim() === '' || !Number.isFinite(value) || value <= 0) {
      fail(`${flag} needs a positive number, got ${JSON.stringify(text ?? '')}`);
    }
    args.numbers[option] = value;
  }
  return args;
}
