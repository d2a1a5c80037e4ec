/** Options every bench script takes. */
export interface BenchArgs {
  /** Tiny N and one repetition: keeps bench/ from rotting in CI, measures nothing. */
  smoke: boolean;
}

/** Parses a bench script's arguments; an unknown one exits non-zero naming it. */
export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = { smoke: false };
  for (const arg of argv) {
    if (arg === '--smoke') args.smoke = true;
    else {
      process.stderr.write(`unknown argument ${JSON.stringify(arg)}; the only option is --smoke\n`);
      process.exit(2);
    }
  }
  return args;
}
