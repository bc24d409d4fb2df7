import type { Job } from 'bullmq';
import {
  JobName,
  type PartitionData,
  type RunSummary,
  type SweepStatus,
  type TickResult,
} from '../src/queue/names.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import { jobIdOfKey, partitionOfJobId, runJobId } from '../src/sweep/run-jobs.ts';

export type RunProgress = {
  partitions: number;
  /** Partitions with nothing left to do in this run: drained, skipped or failed for good. */
  partitionsDone: number;
  /** Rows timed out so far: finished partition jobs' totals plus running ones' progress. */
  finalized: number;
  failedPartitions: number;
};

export type SweepState = {
  tickJobId: string;
  tickState: string;
  /** Why the tick failed, when it did. */
  tickError: string | null;
  /** The run the tick started or joined; null until a worker has taken the tick. */
  runId: string | null;
  /** True when the tick joined a run already under way instead of starting one. */
  joined: boolean;
  runState: string | null;
  progress: RunProgress | null;
  /** The run's totals, once it has finished. */
  summary: RunSummary | null;
  done: boolean;
};

/**
 * Where a "Sweep now" stands: the tick, then the run it started or joined, read from the queue.
 * Null when there is no such tick (never was, or removed since).
 */
export async function readSweepState(
  sq: SweepQueue,
  tickJobId: string,
): Promise<SweepState | null> {
  // The state is read before the job: a job read first could still be active, and so lack the
  // return value that its completed state, read a moment later, promises.
  const tickState = await sq.queue.getJobState(tickJobId);
  const tick = await sq.queue.getJob(tickJobId);
  if (!tick || tick.name !== JobName.tick) return null;
  const result = tickState === 'completed' ? (tick.returnvalue as TickResult) : null;
  const state: SweepState = {
    tickJobId,
    tickState,
    tickError: tickState === 'failed' ? tick.failedReason : null,
    runId: result?.runId ?? null,
    joined: result?.joined === true,
    runState: null,
    progress: null,
    summary: null,
    done: tickState === 'failed',
  };
  if (!result) return state;
  const runState = await sq.queue.getJobState(runJobId(result.runId));
  const run = await sq.queue.getJob(runJobId(result.runId));
  // Finished runs are removed after a while (KEEP_COMPLETED); the history keeps their totals.
  if (!run) return { ...state, runState: 'removed', done: true };
  state.runState = runState;
  state.progress = await readProgress(sq, run, result.partitions);
  if (state.runState === 'completed') state.summary = run.returnvalue as RunSummary;
  state.done = state.runState === 'completed' || state.runState === 'failed';
  return state;
}

/**
 * Adds up a run's partition jobs. A partition whose time budget ran out continues in a new
 * child of the same run, so a partition is done once none of its jobs is left unprocessed.
 * Rows that failed attempts committed before failing count too, as in the run's summary.
 */
async function readProgress(sq: SweepQueue, run: Job, partitions: number): Promise<RunProgress> {
  const deps = await run.getDependencies();
  const processed = Object.values(deps.processed ?? {}) as SweepStatus[];
  const unprocessed = (deps.unprocessed ?? []).map(jobIdOfKey);
  const failed = Object.keys(deps.ignored ?? {}).map(jobIdOfKey);
  const [running, failedForGood] = await Promise.all([
    Promise.all(unprocessed.map((id) => sq.queue.getJob(id))),
    Promise.all(failed.map((id) => sq.queue.getJob(id))),
  ]);
  const pending = new Set(unprocessed.map((id) => partitionOfJobId(id) ?? id));
  return {
    partitions,
    partitionsDone: partitions - pending.size,
    finalized:
      processed.reduce((n, s) => n + (s.finalized ?? 0), 0) +
      running.reduce((n, job) => n + finalizedSoFar(job?.progress) + byFailedAttempts(job), 0) +
      failedForGood.reduce((n, job) => n + byFailedAttempts(job), 0),
    failedPartitions: failed.length,
  };
}

/** A partition job's progress is `{chunks, finalized, lastChunk}` once it has swept a chunk. */
function finalizedSoFar(progress: unknown): number {
  const finalized = (progress as { finalized?: unknown } | null)?.finalized;
  return typeof finalized === 'number' ? finalized : 0;
}

/** Rows timed out by a partition job's earlier attempts that then failed (kept in its data). */
const byFailedAttempts = (job: Job<PartitionData> | undefined) =>
  job?.data.finalizedByFailedAttempts ?? 0;
