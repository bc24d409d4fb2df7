import type { Redis } from 'ioredis';
import type { Pool } from '../src/db/pool.ts';
import * as sql from '../src/db/sql.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import { partitionRange } from '../src/sweep/partitions.ts';
import { readStatus, type StatusReport } from '../src/sweep/status-report.ts';

export type PartitionBacklog = {
  partition: number;
  low: string;
  high: string;
  stale: number;
  inFlight: number;
};

export type Overview = StatusReport & {
  generatedAt: string;
  staleAfterMs: number;
  partitions: PartitionBacklog[];
};

/** How many finished runs the overview shows (table and chart). */
export const RUNS_SHOWN = 50;

/** Everything the overview page shows; also served as JSON at /api/overview. */
export async function readOverview(deps: {
  pool: Pool;
  sq: SweepQueue;
  redis: Redis;
}): Promise<Overview> {
  const [status, partitions] = await Promise.all([
    readStatus(deps, RUNS_SHOWN),
    readPartitionBacklog(deps.pool, deps.sq.config.SWEEP_PARTITIONS, deps.sq.config.STALE_AFTER),
  ]);
  return {
    generatedAt: new Date().toISOString(),
    staleAfterMs: deps.sq.config.STALE_AFTER,
    ...status,
    partitions,
  };
}

/** Stale and in-flight rows of each partition, as the workers split the ids (SWEEP_PARTITIONS). */
export async function readPartitionBacklog(
  pool: Pool,
  partitions: number,
  staleAfterMs: number,
): Promise<PartitionBacklog[]> {
  const ranges = Array.from({ length: partitions }, (_, i) => partitionRange(i, partitions));
  const { rows } = await pool.query(sql.backlogByPartition, [
    ranges.map((r) => r.low),
    ranges.map((r) => r.high),
    staleAfterMs,
  ]);
  return rows.map((row, i) => ({
    partition: row.partition,
    low: ranges[i]?.low ?? '',
    high: ranges[i]?.high ?? '',
    stale: row.stale,
    inFlight: row.incomplete - row.stale,
  }));
}
