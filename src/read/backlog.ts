import type { Pool } from '../db/pool.ts';
import * as sql from '../sql/backlog.ts';
import { partitionRange } from '../sweep/partitions.ts';

export type Backlog = {
  /** Incomplete entries older than STALE_AFTER: waiting for the sweeper. */
  stale: number;
  /** Incomplete entries younger than that: operations still under way. */
  inFlight: number;
  oldestStarted: string | null;
  oldestAgeMs: number;
};

export type PartitionBacklog = {
  partition: number;
  low: string;
  high: string;
  stale: number;
  inFlight: number;
};

export async function readBacklog(pool: Pool, staleAfterMs: number): Promise<Backlog> {
  const b = await sql.backlog(pool, { staleAfterMs });
  return {
    stale: b.stale,
    inFlight: b.incomplete - b.stale,
    oldestStarted: b.oldestStarted,
    oldestAgeMs: Math.round(b.oldestAgeMs),
  };
}

/** Stale and in-flight rows of each partition, as the workers split the ids (SWEEP_PARTITIONS). */
export async function readPartitionBacklog(
  pool: Pool,
  s: { partitions: number; staleAfterMs: number },
): Promise<PartitionBacklog[]> {
  const ranges = Array.from({ length: s.partitions }, (_, i) => partitionRange(i, s.partitions));
  const counts = await sql.backlogByRange(pool, { ranges, staleAfterMs: s.staleAfterMs });
  return ranges.map((range, partition) => {
    const c = counts[partition] ?? { stale: 0, incomplete: 0 };
    return { partition, ...range, stale: c.stale, inFlight: c.incomplete - c.stale };
  });
}
