/**
 * Late completions this process saw: an application's complete() that came after the entry was
 * already final (timed out by the sweeper, or completed twice). Kept here, not in a metrics
 * registry, because the store is a library that an application embeds before (or without) any
 * registry: audit_sweeper_late_completions_total reads the tally at scrape time.
 */
const seen = new Map<string, number>();

export function countLateCompletion(existingResult: string): void {
  seen.set(existingResult, (seen.get(existingResult) ?? 0) + 1);
}

/** By the result the entry already had (`unknown` is the sweeper's timeout). */
export const lateCompletions = (): ReadonlyMap<string, number> => new Map(seen);
