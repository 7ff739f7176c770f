import { distance } from 'fastest-levenshtein';

/** Registered names close to `name` (a typo, a different separator), closest first, at most `max`. */
export function closeNames(name: string, names: readonly string[], max = 3): string[] {
  const lower = name.toLowerCase();
  // Up to a third of the name may differ: "examples.wait-and-reprot" finds its type, "foo" does
  // not suggest every three-letter name.
  const limit = Math.max(2, Math.floor(name.length / 3));
  return names
    .map((n) => ({ n, d: distance(lower, n.toLowerCase()) }))
    .filter((c) => c.d <= limit || c.n.toLowerCase().endsWith(`.${lower}`))
    .sort((a, b) => a.d - b.d || (a.n < b.n ? -1 : 1))
    .slice(0, max)
    .map((c) => c.n);
}
