import type { Job } from 'bullmq';
import { jobIdOfKey, partitionOfJobId } from '../queue/job-ids.ts';
import type { PartitionData } from '../queue/jobs.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import type { SweepStatus } from '../sweep/status.ts';

export type RunChildren = {
  /** Statuses returned by the run's finished partition jobs. */
  finished: SweepStatus[];
  /** Partition jobs not processed yet (waiting, active, or retrying). */
  pending: { id: string; job: Job<PartitionData> | undefined }[];
  /** Partition jobs that failed for good, with their errors. */
  failed: { partition: number; error: string; job: Job<PartitionData> | undefined }[];
};

/**
 * Where a run's partition jobs stand: the one reading of a run's children that its progress
 * (while it runs) and its summary (once done) are both made from, so the two always agree.
 */
export async function readRunChildren(sq: SweepQueue, run: Job): Promise<RunChildren> {
  const deps = await run.getDependencies();
  const pendingIds = (deps.unprocessed ?? []).map(jobIdOfKey);
  const failures = Object.entries(deps.ignored ?? {}).map(([key, error]) => ({
    id: jobIdOfKey(key),
    error: String(error),
  }));
  const [pending, failedJobs] = await Promise.all([
    Promise.all(pendingIds.map((id) => sq.partitions.getJob(id))),
    Promise.all(failures.map((f) => sq.partitions.getJob(f.id))),
  ]);
  return {
    finished: Object.values(deps.processed ?? {}) as SweepStatus[],
    pending: pendingIds.map((id, i) => ({ id, job: pending[i] })),
    failed: failures.map((f, i) => ({
      partition: partitionOfJobId(f.id) ?? -1,
      error: f.error,
      job: failedJobs[i],
    })),
  };
}

/** Rows a run has timed out: finished jobs' totals, plus what failed attempts committed first. */
export function finalizedInRun(children: RunChildren, includeRunning = false): number {
  return (
    children.finished.reduce((n, s) => n + (s.finalized ?? 0), 0) +
    children.failed.reduce((n, f) => n + finalizedByFailedAttempts(f.job), 0) +
    (includeRunning
      ? children.pending.reduce(
          (n, p) => n + finalizedSoFar(p.job?.progress) + finalizedByFailedAttempts(p.job),
          0,
        )
      : 0)
  );
}

/** Rows timed out by a partition job's earlier attempts that then failed (kept in its data). */
const finalizedByFailedAttempts = (job: Job<PartitionData> | undefined) =>
  job?.data.finalizedByFailedAttempts ?? 0;

/** A running partition job's progress is `{chunks, finalized, lastChunk}` once it has swept. */
function finalizedSoFar(progress: unknown): number {
  const finalized = (progress as { finalized?: unknown } | null)?.finalized;
  return typeof finalized === 'number' ? finalized : 0;
}
