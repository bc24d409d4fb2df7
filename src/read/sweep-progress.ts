import { runJobId } from '../queue/job-ids.ts';
import { JobName, type RunSummary, type TickResult } from '../queue/jobs.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import { finalizedInRun, readRunChildren } from './run-children.ts';

export type RunProgress = {
  partitions: number;
  /** Partitions with nothing left to do in this run: drained, skipped or failed for good. */
  partitionsDone: number;
  /** Rows timed out so far: finished partition jobs' totals plus running ones' progress. */
  finalized: number;
  failedPartitions: number;
};

export type SweepProgress = {
  tickJobId: string;
  tickState: string;
  /** Why the tick failed, when it did. */
  tickError: string | null;
  /** The run the tick started or joined; null until a worker has taken the tick. */
  runId: string | null;
  /** True when the tick joined a run already under way instead of starting one. */
  joined: boolean;
  /** Set when the tick started no run because the sweeper was paused (by whom). */
  pausedBy: string | null;
  runState: string | null;
  progress: RunProgress | null;
  /** The run's totals, once it has finished. */
  summary: RunSummary | null;
  done: boolean;
};

/**
 * Where a sweep request stands: the tick, then the run it started or joined, read from the
 * queue. Null when there is no such tick (never was, or removed since).
 */
export async function readSweepProgress(
  sq: SweepQueue,
  tickJobId: string,
): Promise<SweepProgress | null> {
  // The state is read before the job: a job read first could still be active, and so lack the
  // return value that its completed state, read a moment later, promises.
  const tickState = await sq.queue.getJobState(tickJobId);
  const tick = await sq.queue.getJob(tickJobId);
  if (!tick || tick.name !== JobName.tick) return null;
  const result = tickState === 'completed' ? (tick.returnvalue as TickResult) : null;
  const state: SweepProgress = {
    tickJobId,
    tickState,
    tickError: tickState === 'failed' ? tick.failedReason : null,
    runId: result?.runId ?? null,
    joined: (result && 'joined' in result && result.joined === true) || false,
    pausedBy: result && 'pausedBy' in result ? result.pausedBy : null,
    runState: null,
    progress: null,
    summary: null,
    done: tickState === 'failed',
  };
  if (!result) return state;
  if (result.runId === null) return { ...state, done: true };
  const runState = await sq.queue.getJobState(runJobId(result.runId));
  const run = await sq.queue.getJob(runJobId(result.runId));
  // Finished runs are removed after a while (KEEP_COMPLETED); the history keeps their totals.
  if (!run) return { ...state, runState: 'removed', done: true };
  const children = await readRunChildren(sq, run);
  // A partition whose time budget ran out continues in a new child of the same run, so a
  // partition is done once none of its jobs is left unprocessed.
  const pending = new Set(children.pending.map((p) => p.job?.data.partition ?? p.id));
  state.runState = runState;
  state.progress = {
    partitions: result.partitions,
    partitionsDone: result.partitions - pending.size,
    finalized: finalizedInRun(children, true),
    failedPartitions: children.failed.length,
  };
  if (runState === 'completed') state.summary = run.returnvalue as RunSummary;
  state.done = runState === 'completed' || runState === 'failed';
  return state;
}
