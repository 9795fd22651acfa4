/**
 * Benchmark harness. Each benchmark module exports `benchmarks: Benchmark[]`. A benchmark measures its
 * figure and, where a goal is relative, a baseline in the same run, because these machines drift by ±30 %.
 */
export interface Goal {
  /** `<=` means the value (or ratio, when `on` is 'ratio') must not exceed `limit`. */
  readonly op: '<=' | '>=';
  readonly limit: number;
  readonly on: 'value' | 'ratio';
}

export interface Metric {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline?: number;
  readonly baselineLabel?: string;
  /** When the baseline is not in the value's unit (a whole RSS beside a per-cluster figure). @default unit */
  readonly baselineUnit?: string;
  readonly ratio?: number;
  readonly goal?: Goal;
  /** Free-form extras (p99, per-door figures) kept in the JSON report. */
  readonly extra?: Record<string, number | string>;
}

export interface BenchContext {
  /** `--quick`: fewer iterations, same code paths. */
  readonly quick: boolean;
  /**
   * `--smoke` (implies quick; the test suite runs it so a benchmark cannot rot unnoticed): the smallest sizes that
   * still run every code path. Its figures mean nothing.
   */
  readonly smoke: boolean;
  /** Progress lines go to stderr so the JSON report on stdout stays clean. */
  log(message: string): void;
}

export interface Benchmark {
  readonly name: string;
  run(ctx: BenchContext): Promise<Metric[]>;
}

/** The size for this run: `full`, `quick` with --quick, `smoke` with --smoke (default: `quick`). */
export function sized(ctx: BenchContext, full: number, quick: number, smoke = quick): number {
  return ctx.smoke ? smoke : ctx.quick ? quick : full;
}

export function median(samples: number[]): number {
  return percentile(samples, 50);
}

export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

export function goalMet(metric: Metric): boolean | undefined {
  if (!metric.goal) return undefined;
  const subject = metric.goal.on === 'ratio' ? metric.ratio : metric.value;
  if (subject === undefined || Number.isNaN(subject)) return false;
  return metric.goal.op === '<=' ? subject <= metric.goal.limit : subject >= metric.goal.limit;
}

/** Times `fn` `count` times after `warmup` untimed calls; returns milliseconds per call. */
export async function sample(
  count: number,
  fn: () => Promise<unknown> | unknown,
  warmup = 3,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await fn();
    out.push(performance.now() - start);
  }
  return out;
}
