import type { RunSummary } from '../queue/jobs.ts';

export type FailingPartition = {
  partition: number;
  /** Of how many: partition 3 of 16 is another id range than 3 of 7. */
  partitions: number;
  error: string;
  runId: string;
  failedAt: string;
  /** Consecutive runs (newest first) in which it failed. */
  failedRuns: number;
};

/**
 * Partitions whose latest sweep failed: for each partition, the newest run that swept it (every
 * run sweeps all, a retry only one) decides. Only runs with the newest run's partition count
 * count: after SWEEP_PARTITIONS changes, the old ranges no longer exist.
 */
export function failingPartitions(runs: RunSummary[]): FailingPartition[] {
  const newest = runs[0];
  if (!newest) return [];
  const decided = new Map<number, FailingPartition | null>();
  for (const run of runs) {
    if (run.partitions !== newest.partitions) continue;
    const swept = run.only ?? Array.from({ length: run.partitions }, (_, i) => i);
    for (const partition of swept) {
      const failure = run.failedPartitions.find((f) => f.partition === partition);
      const known = decided.get(partition);
      if (known === undefined) {
        decided.set(
          partition,
          failure
            ? {
                partition,
                partitions: run.partitions,
                error: failure.error,
                runId: run.runId,
                failedAt: run.finishedAt,
                failedRuns: 1,
              }
            : null,
        );
      } else if (known && known.failedRuns > 0) {
        // Counting back consecutive failures; a success (or a run without it) ends the streak.
        if (failure) known.failedRuns += 1;
        else known.failedRuns = -known.failedRuns;
      }
    }
  }
  return [...decided.values()]
    .filter((f): f is FailingPartition => f !== null)
    .map((f) => ({ ...f, failedRuns: Math.abs(f.failedRuns) }))
    .sort((a, b) => a.partition - b.partition);
}
