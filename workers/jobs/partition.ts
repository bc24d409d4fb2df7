import type { Job } from 'bullmq';
import type { Logger } from '../../src/log.ts';
import type { PartitionData } from '../../src/queue/jobs.ts';
import { continuePartition } from '../../src/queue/run-flow.ts';
import type { SweepStatus, WaitedMs } from '../../src/sweep/status.ts';
import { sweepPartition } from '../../src/sweep/sweep-partition.ts';
import type { JobContext } from '../job-context.ts';
import { holdPartitionLock, type PartitionLockHolding } from '../partition/lock-holding.ts';
import { countParkedTime, Parking } from '../partition/parking.ts';
import { ProgressBatcher } from '../partition/progress.ts';

/**
 * What a partition job does: take the partition's lock (or report that another sweep holds
 * it), sweep under it while renewing it, release it, then record the outcome and continue in a
 * new job if the time budget ran out first or a pause parked it. A failed sweep throws, so
 * BullMQ retries it with backoff.
 */
export async function processPartition(
  job: Job<PartitionData>,
  ctx: JobContext,
): Promise<SweepStatus> {
  const log = ctx.logger.child({
    job: job.id,
    runId: job.data.runId,
    partition: job.data.partition,
  });
  const holding = await holdPartitionLock(ctx, job.data, log);
  if (!holding) return skipLocked(job, ctx, log);
  const parking = new Parking();
  let status: SweepStatus;
  try {
    status = await sweepUnderLock(job, ctx, holding, parking, log);
  } finally {
    await holding.release();
  }
  return finish(job, ctx, log, status, holding, parking);
}

/** Another sweep of this partition holds its lock: nothing to do. */
async function skipLocked(
  job: Job<PartitionData>,
  ctx: JobContext,
  log: Logger,
): Promise<SweepStatus> {
  ctx.metrics.lockContention.inc();
  ctx.metrics.partitionSweeps.inc({ outcome: 'skipped_locked' });
  log.info('another sweep of this partition is under way; nothing to do');
  await job.log('skipped: another sweep of this partition holds its lock');
  const { partition, partitions } = job.data;
  return {
    partition,
    partitions,
    finalized: 0,
    chunks: 0,
    cutoff: null,
    durationMs: 0,
    drained: false,
    skipped: 'locked',
  };
}

/** The sweep itself, each chunk behind the gate and the lock check; progress sent in batches. */
async function sweepUnderLock(
  job: Job<PartitionData>,
  ctx: JobContext,
  holding: PartitionLockHolding,
  parking: Parking,
  log: Logger,
): Promise<SweepStatus> {
  const { settings, gate } = ctx;
  const progress = new ProgressBatcher(job, log);
  const signal = AbortSignal.any([ctx.shutdown, holding.lost, parking.signal]);
  const waitedMs: WaitedMs = {};
  countParkedTime(gate, job.data, waitedMs);
  try {
    const status = await sweepPartition(ctx.pool, {
      partition: job.data.partition,
      partitions: job.data.partitions,
      staleAfterMs: settings.STALE_AFTER,
      chunkSize: settings.SWEEP_CHUNK_SIZE,
      timeBudgetMs: settings.SWEEP_TIME_BUDGET,
      signal,
      // The one gate before each chunk: pause, replica lag, load, pacing (src/control/).
      beforeChunk: async () => {
        // The lock check (with the progress sent since the last chunk) and the gate's pause read
        // go out together: one Redis round trip when nothing holds the chunk back. A lock lost
        // while the gate waits aborts `signal`. The check never rejects, so a gate that throws
        // leaves no rejection behind it.
        const checking = Promise.all([holding.check(), progress.sent()]);
        const limit = await gate.beforeChunk(settings.SWEEP_CHUNK_SIZE, signal, waitedMs);
        const [check] = await checking;
        if ('error' in check) throw check.error;
        if (limit === null) return undefined; // stopping: the loop sees the signal
        if (typeof limit !== 'number') {
          parking.park(limit);
          return undefined;
        }
        if (!check.held) throw holding.markLost();
        return limit;
      },
      onChunk: async (p) => {
        progress.chunk(p);
        await gate.afterChunk(p.limit, p.lastChunk);
      },
    });
    progress.flush();
    if (Object.keys(waitedMs).length)
      status.waitedMs = Object.fromEntries(
        Object.entries(waitedMs).map(([reason, ms]) => [reason, Math.round(ms)]),
      );
    return status;
  } finally {
    await progress.sent();
  }
}

/**
 * Metrics and logs (with `lockHeld`, read by the chaos run's overlap check); a failed sweep
 * throws; an unfinished one continues in a new job that any worker may take.
 */
async function finish(
  job: Job<PartitionData>,
  ctx: JobContext,
  log: Logger,
  status: SweepStatus,
  holding: PartitionLockHolding,
  parking: Parking,
): Promise<SweepStatus> {
  const lockHeld = holding.held;
  ctx.metrics.rowsFinalized.inc(status.finalized);
  ctx.metrics.partitionSweepDuration.observe(status.durationMs / 1000);
  // Chunks committed by earlier attempts of this job that then failed.
  const earlier = job.data.finalizedByFailedAttempts ?? 0;
  if (status.error) {
    ctx.metrics.partitionSweeps.inc({ outcome: 'failed' });
    // The worker logs the failure ("job failed", once per change of state); details here.
    log.debug({ status, lockHeld }, 'partition sweep failed');
    if (status.finalized > 0)
      await job
        .updateData({ ...job.data, finalizedByFailedAttempts: earlier + status.finalized })
        .catch((err) => log.warn({ err }, 'could not record the rows this attempt timed out'));
    throw new Error(
      `${status.error} (after timing out ${status.finalized} rows in ${status.chunks} chunks)`,
    );
  }
  // The run logs one warning for all its partitions (jobs/run.ts); per partition, details only.
  if (status.finalized > 0)
    log.info({ status, lockHeld }, 'timed out audit log entries whose completion was lost');
  else log.debug({ status, lockHeld }, 'partition swept');
  ctx.metrics.partitionSweeps.inc({ outcome: status.drained ? 'drained' : 'budget_spent' });
  if (parking.by) {
    status.parked = 'paused';
    await job.log(`paused by ${parking.by.by}: parked before chunk ${status.chunks + 1}`);
  }
  // Out of time, shutting down or parked: the rest goes to a new job that any worker may take
  // (a parked one after its delay). When the lock was lost, its new holder carries on instead.
  if (!status.drained && !holding.lost.aborted)
    await continuePartition(ctx.sq, job, ctx.settings, parking.continuation());
  return earlier ? { ...status, finalized: earlier + status.finalized } : status;
}
