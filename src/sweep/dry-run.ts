import type { Pool } from '../db/pool.ts';
import { formatDuration } from '../duration.ts';
import type { SettingsSource } from '../fleet/drift.ts';
import { staleByRange } from '../sql/backlog.ts';
import { partitionRange } from './partitions.ts';

/** What a sweep would do now, partition by partition: nothing is written, no lock is taken. */
export type DryRunReport = {
  /** Rows that started before this (database clock) are what a sweep finalizes now. */
  cutoff: string;
  staleAfterMs: number;
  partitions: number;
  /** Whose settings these are: the live workers', the last worker's, or this reader's own. */
  settingsSource: SettingsSource;
  wouldFinalize: number;
  oldestStarted: string | null;
  byPartition: {
    partition: number;
    low: string;
    high: string;
    wouldFinalize: number;
    oldestStarted: string | null;
  }[];
};

/** The dry run: counts of the partial index, per partition, in one statement. */
export async function dryRun(
  pool: Pool,
  s: { staleAfterMs: number; partitions: number; settingsSource: SettingsSource },
): Promise<DryRunReport> {
  const ranges = Array.from({ length: s.partitions }, (_, i) => partitionRange(i, s.partitions));
  const { cutoff, rows } = await staleByRange(pool, { ranges, staleAfterMs: s.staleAfterMs });
  const byPartition = ranges.map((range, partition) => ({
    partition,
    ...range,
    wouldFinalize: rows[partition]?.stale ?? 0,
    oldestStarted: rows[partition]?.oldestStarted ?? null,
  }));
  const oldest = byPartition
    .map((p) => p.oldestStarted)
    .filter((t): t is string => t !== null)
    .sort((a, b) => Date.parse(a) - Date.parse(b))[0];
  return {
    cutoff,
    staleAfterMs: s.staleAfterMs,
    partitions: s.partitions,
    settingsSource: s.settingsSource,
    wouldFinalize: byPartition.reduce((n, p) => n + p.wouldFinalize, 0),
    oldestStarted: oldest ?? null,
    byPartition,
  };
}

/** The report in words, for `sweep --dry-run`. */
export function describeDryRun(r: DryRunReport): string {
  const who = {
    workers: "the live workers'",
    'last-worker': "the last worker's",
    own: "this command's own",
  }[r.settingsSource];
  return [
    `dry run: a sweep now would time out ${r.wouldFinalize} entries (started before ${r.cutoff}${r.oldestStarted ? `, oldest ${r.oldestStarted}` : ''}); nothing was written`,
    `  with ${who} settings: STALE_AFTER ${formatDuration(r.staleAfterMs)}, ${r.partitions} partitions`,
    ...r.byPartition
      .filter((p) => p.wouldFinalize > 0)
      .map(
        (p) =>
          `  partition ${p.partition}: ${p.wouldFinalize} entries, oldest ${p.oldestStarted ?? '-'}`,
      ),
  ].join('\n');
}
