import type { Config } from '../config.ts';
import type { FleetControl } from '../control/fleet-state.ts';
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
import { readFleetControl } from './control.ts';
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
  /** Running, paced, throttled or paused, and the limits as this reader's settings say. */
  control: FleetControl & {
    limits: {
      maxRowsPerSecond: number | null;
      maxReplicaLagMs: number | null;
      maxActiveBackends: number | null;
    };
  };
};

export type OverviewSettings = Pick<
  Config,
  | 'STALE_AFTER'
  | 'SWEEP_PARTITIONS'
  | 'SWEEP_MAX_ROWS_PER_SECOND'
  | 'SWEEP_MAX_REPLICA_LAG'
  | 'SWEEP_MAX_ACTIVE_BACKENDS'
>;

export type OverviewSources = { pool: Pool; sq: SweepQueue; redis: RedisClient };

/** The one read of the sweeper's state, for the CLI, the dashboard and its APIs. */
export async function readOverview(
  from: OverviewSources,
  settings: OverviewSettings,
  runs: number,
): Promise<Overview> {
  const staleAfterMs = settings.STALE_AFTER;
  const [backlog, partitions, schedulers, currentRunId, recent, control] = await Promise.all([
    readBacklog(from.pool, staleAfterMs),
    readPartitionBacklog(from.pool, { partitions: settings.SWEEP_PARTITIONS, staleAfterMs }),
    readSchedulers(from.sq),
    currentRun(from.sq, from.redis),
    recentRuns(from.sq, from.redis, runs),
    readFleetControl(from.sq, from.redis),
  ]);
  return {
    generatedAt: new Date().toISOString(),
    staleAfterMs,
    backlog,
    partitions,
    schedulers,
    currentRunId,
    recentRuns: recent,
    control: {
      ...control,
      limits: {
        maxRowsPerSecond: settings.SWEEP_MAX_ROWS_PER_SECOND,
        maxReplicaLagMs: settings.SWEEP_MAX_REPLICA_LAG,
        maxActiveBackends: settings.SWEEP_MAX_ACTIVE_BACKENDS,
      },
    },
  };
}
