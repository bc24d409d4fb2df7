import type { Redis } from 'ioredis';
import type { Pool } from '../db/pool.ts';
import * as sql from '../db/sql.ts';
import type { RunSummary } from '../queue/names.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import { currentRun, recentRuns } from './run-jobs.ts';

export type Backlog = {
  /** Incomplete entries older than STALE_AFTER: waiting for the sweeper. */
  stale: number;
  /** Incomplete entries younger than that: operations still under way. */
  inFlight: number;
  oldestStarted: string | null;
  oldestAgeMs: number;
};

export type SchedulerStatus = {
  id: string;
  jobName: string;
  everyMs: number | null;
  pattern: string | null;
  nextRunAt: string | null;
};

export type StatusReport = {
  backlog: Backlog;
  schedulers: SchedulerStatus[];
  currentRunId: string | null;
  recentRuns: RunSummary[];
};

export async function readBacklog(pool: Pool, staleAfterMs: number): Promise<Backlog> {
  const { rows } = await pool.query(sql.backlog, [staleAfterMs]);
  const b = rows[0];
  return {
    stale: b.stale,
    inFlight: b.incomplete - b.stale,
    oldestStarted: b.oldest_started,
    oldestAgeMs: Math.round(b.oldest_age_ms),
  };
}

/** Everything `audit-sweeper status` shows: the backlog, the schedules, the runs. */
export async function readStatus(
  deps: { pool: Pool; sq: SweepQueue; redis: Redis },
  runs = 10,
): Promise<StatusReport> {
  const [backlog, schedulers, currentRunId, recent] = await Promise.all([
    readBacklog(deps.pool, deps.sq.config.STALE_AFTER),
    deps.sq.queue.getJobSchedulers(),
    currentRun(deps.sq, deps.redis),
    recentRuns(deps.sq, deps.redis, runs),
  ]);
  return {
    backlog,
    schedulers: schedulers.map((s) => ({
      id: s.key,
      jobName: s.name,
      everyMs: s.every ? Number(s.every) : null,
      pattern: s.pattern ?? null,
      nextRunAt: s.next ? new Date(s.next).toISOString() : null,
    })),
    currentRunId,
    recentRuns: recent,
  };
}
