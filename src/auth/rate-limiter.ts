/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Sustained requests per second per key; above 0. */
  perSecond: number;
  /** Requests a key may make at once after being idle (the bucket's size); at least 1. */
  burst: number;
  /** Clock in ms, for tests. Default Date.now. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets idle this long are full again and can be dropped: memory stays bounded. */
const SWEEP_EVERY = 1_000;

/**
 * A token bucket per key (a token id): each key may make `burst` requests at once and
 * `perSecond` a second sustained. In memory, per process: with N service instances behind a
 * load balancer a token gets up to N times the rate. Never blocks: a request over the limit
 * is refused with the seconds until one would be allowed.
 */
export class RateLimiter {
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();
  private takes = 0;

  constructor(options: RateLimiterOptions) {
    if (!(options.perSecond > 0) || !Number.isFinite(options.perSecond)) {
      throw new RangeError(`perSecond must be a positive number; got ${options.perSecond}`);
    }
    if (!(options.burst >= 1) || !Number.isFinite(options.burst)) {
      throw new RangeError(`burst must be at least 1; got ${options.burst}`);
    }
    this.perSecond = options.perSecond;
    this.burst = options.burst;
    this.now = options.now ?? Date.now;
  }

  /**
   * Takes one request from `key`'s bucket. Returns 0 when allowed, else the seconds (> 0)
   * until the bucket holds a request again, for a Retry-After header.
   */
  take(key: string): number {
    const now = this.now();
    if (++this.takes % SWEEP_EVERY === 0) this.sweep(now);
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(
      this.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond,
    );
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / this.perSecond;
  }

  private sweep(now: number): void {
    const fullAfterMs = (this.burst / this.perSecond) * 1000;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at >= fullAfterMs) this.buckets.delete(key);
    }
  }
}
