import v8 from 'node:v8';

/**
 * Bounds how far V8 lets the heap grow past its live size before the next major collection.
 * On a machine with memory to spare V8 lets the old generation reach about four times its
 * live size first: in the soak (bench/soak.ts, 1,000 msgs/s through the service) 25 MB of
 * live objects sat in a 91 MB old generation, and the service's RSS swung between 140 and
 * 224 MiB, mostly garbage awaiting a major collection. A growth of `percent` keeps the old
 * generation within (1 + percent/100) × live, for more frequent (mostly concurrent) major
 * collections.
 *
 * V8 reads this flag at every collection, so setting it at run time takes effect. It is
 * process-wide: only the `serve` command sets it, never code that imports the package.
 * 0 leaves V8's own choice.
 */
export function limitHeapGrowth(percent: number): void {
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
