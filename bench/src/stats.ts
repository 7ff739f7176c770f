/** Nearest-rank percentile of already sorted values (p in [0, 100]). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export interface Distribution {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: percentile(sorted, 100) };
}

/**
 * Timer delays spread uniformly over [0, maxMs): the golden-ratio sequence, deterministic so that
 * runs are comparable, and interleaved so that every enqueue batch covers the whole range.
 */
export function spreadDelays(n: number, maxMs = 1000): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(((i * 0.6180339887498949) % 1) * maxMs));
}

export const round = (x: number, digits = 1): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/**
 * When each enqueue chunk is sent, relative to the start: all at once in chunks of 1000 (the
 * default, a backlog), or at `rate` tasks/s in a chunk every 50 ms (open loop, to see latency at a
 * load the pipeline sustains).
 */
export function arrivals(delays: readonly number[], rate: number | null): { atMs: number; delays: number[] }[] {
  const size = rate === null ? 1000 : Math.max(1, Math.round(rate / 20));
  const chunks: { atMs: number; delays: number[] }[] = [];
  for (let i = 0, k = 0; i < delays.length; i += size, k++) {
    chunks.push({ atMs: rate === null ? 0 : k * 50, delays: delays.slice(i, i + size) });
  }
  return chunks;
}

export async function sleepUntil(at: number): Promise<void> {
  const ms = at - Date.now();
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}
