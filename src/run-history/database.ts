import type { Pool } from '../db/pool.ts';
import type { RunSummary } from '../queue/jobs.ts';
import * as sql from '../sql/run-history.ts';
import type { RetentionStatus } from '../sweep/status.ts';

/**
 * Finished runs in PostgreSQL (table audit_sweeper_runs, its statements in sql/run-history.ts):
 * the history the overview, its chart and `status --runs` read, which survives a Redis that lost
 * its data. The Redis list (redis.ts) is the fallback while PostgreSQL is away.
 */

export async function recordRunInDatabase(pool: Pool, s: RunSummary): Promise<void> {
  await sql.insertRun(pool, {
    runId: s.runId,
    kind: 'sweep',
    trigger: s.trigger,
    startedAt: s.startedAt,
    finishedAt: s.finishedAt,
    durationMs: s.durationMs,
    rows: s.finalized,
    chunks: s.chunks,
    partitions: s.partitions,
    failedPartitions: s.failedPartitions.map((f) => f.partition),
    skippedPartitions: s.skippedPartitions,
    summary: s,
  });
}

export type RetentionRun = {
  runId: string;
  startedAt: string;
  finishedAt: string;
  status: RetentionStatus;
};

export async function recordRetentionInDatabase(
  pool: Pool,
  r: { runId: string; startedAt: string; status: RetentionStatus },
): Promise<void> {
  const finishedAt = new Date().toISOString();
  await sql.insertRun(pool, {
    runId: r.runId,
    kind: 'retention',
    trigger: 'schedule',
    startedAt: r.startedAt,
    finishedAt,
    durationMs: r.status.durationMs,
    rows: r.status.deleted,
    chunks: r.status.chunks,
    partitions: null,
    failedPartitions: [],
    skippedPartitions: [],
    summary: { ...r, finishedAt } satisfies RetentionRun,
  });
}

export async function readRecentRuns(pool: Pool, count: number): Promise<RunSummary[]> {
  return (await sql.recentRunSummaries(pool, { kind: 'sweep', count })) as RunSummary[];
}

export async function readLastRetention(pool: Pool): Promise<RetentionRun | null> {
  const [last] = await sql.recentRunSummaries(pool, { kind: 'retention', count: 1 });
  return (last as RetentionRun | undefined) ?? null;
}
