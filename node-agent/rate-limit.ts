// Per-source token buckets. The table is bounded so a flood from many
// (spoofed) sources cannot grow memory: the oldest entry is evicted.
export const MAX_RATE_SOURCES = 65_536;

interface Bucket {
  tokens: number;
  updatedMs: number;
  /** When this source was last told it is limited (we say it once per second). */
  toldMs: number;
}

export type RateDecision = 'allow' | 'limit-and-tell' | 'limit-silently';

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /** perSecond <= 0 disables limiting. */
  constructor(
    private readonly perSecond: number,
    private readonly burst: number = perSecond,
    private readonly now: () => number = () => performance.now(),
  ) {}

  check(source: string): RateDecision {
    if (this.perSecond <= 0) return 'allow';
    const t = this.now();
    let b = this.buckets.get(source);
    if (!b) {
      if (this.buckets.size >= MAX_RATE_SOURCES) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.burst, updatedMs: t, toldMs: -Infinity };
      this.buckets.set(source, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.updatedMs) * this.perSecond) / 1000);
      b.updatedMs = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 'allow';
    }
    if (t - b.toldMs >= 1000) {
      b.toldMs = t;
      return 'limit-and-tell';
    }
    return 'limit-silently';
  }
}
