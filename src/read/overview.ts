import type { Config } from '../config.ts';
import type { Pool } from '../db/pool.ts';
import { currentRun } from '../queue/current-run.ts';
import type { RunSummary } from '../queue/jobs.ts';
import { recentRuns } from '../queue/run-history.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import {
  type Backlog,
  type PartitionBacklog,
  readBacklog,
  readPartitionBacklog,
} from './backlog.ts';
import { readSchedulers, type SchedulerInfo } from './schedulers.ts';

/** What `status` prints and the dashboard's overview shows (and serves at /api/overview). */
export type Overview = {
  generatedAt: string;
  staleAfterMs: number;
  backlog: Backlog;
  partitions: PartitionBacklog[];
  schedulers: SchedulerInfo[];
  currentRunId: string | null;
  recentRuns: RunSummary[];
};

export type OverviewSources = { pool: Pool; sq: SweepQueue; redis: RedisClient };

/** The one read of the sweeper's state, for the CLI, the dashboard and its APIs. */
export async function readOverview(
  from: OverviewSources,
  settings: Pick<Config, 'STALE_AFTER' | 'SWEEP_PARTITIONS'>,
  runs: number,
): Promise<Overview> {
  const staleAfterMs = settings.STALE_AFTER;
  const [backlog, partitions, schedulers, currentRunId, recent] = await Promise.all([
    readBacklog(from.pool, staleAfterMs),
    readPartitionBacklog(from.pool, { partitions: settings.SWEEP_PARTITIONS, staleAfterMs }),
    readSchedulers(from.sq),
    currentRun(from.sq, from.redis),
    recentRuns(from.sq, from.redis, runs),
  ]);
  return {
    generatedAt: new Date().toISOString(),
    staleAfterMs,
    backlog,
    partitions,
    schedulers,
    currentRunId,
    recentRuns: recent,
  };
}
