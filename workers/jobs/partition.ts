import type { Job } from 'bullmq';
import type { ProductPause } from '../../src/pause.ts';
import type { PartitionData } from '../../src/queue/jobs.ts';
import { PartitionLock } from '../../src/queue/partition-lock.ts';
import { continuePartition } from '../../src/queue/run-flow.ts';
import { productKey } from '../../src/queue/sweep-queue.ts';
import type { SweepStatus, WaitedMs } from '../../src/sweep/status.ts';
import { sweepPartition } from '../../src/sweep/sweep-partition.ts';
import type { JobContext } from '../job-context.ts';

/** How often a partition job records its progress and writes its job log. */
const REPORT_EVERY_MS = 1_000;

class LockLostError extends Error {
  constructor() {
    super(
      'partition lock lost (this worker stalled past SWEEP_LOCK_TTL); another sweep owns it now',
    );
  }
}

/** A parked job looks again at least this often (resume also wakes it at once). */
const PARK_RECHECK_MS = 60_000;

/** Until the pause ends by itself, or a minute for a pause that lasts until `resume`. */
const parkDelay = (p: ProductPause) =>
  Math.min(
    PARK_RECHECK_MS,
    p.until ? Math.max(0, Date.parse(p.until) - Date.now()) + 100 : PARK_RECHECK_MS,
  );

/**
 * What a partition job does: take the partition's lock (or report that another sweep holds
 * it), sweep under it while renewing it, release it, and continue in a new job at once if the
 * time budget ran out first. A failed sweep throws, so BullMQ retries it with backoff.
 */
export async function processPartition(
  job: Job<PartitionData>,
  ctx: JobContext,
): Promise<SweepStatus> {
  const settings = ctx.settings;
  const { partition, partitions } = job.data;
  const log = ctx.logger.child({ job: job.id, runId: job.data.runId, partition });
  const lock = new PartitionLock(
    ctx.redis,
    // Names the id range: partition 3 of 16 and 3 of 7 are different ranges with their own locks.
    productKey(ctx.sq, `partition-lock:${partition}-of-${partitions}`),
    settings.SWEEP_LOCK_TTL,
  );

  if (!(await lock.acquire())) {
    ctx.metrics.lockContention.inc();
    ctx.metrics.partitionSweeps.inc({ outcome: 'skipped_locked' });
    log.info('another sweep of this partition is under way; nothing to do');
    await job.log('skipped: another sweep of this partition holds its lock');
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
  // When this process held the lock, by its own clock, from just after it was granted to just
  // before it is given back: logged, so that two holders of one lock at once would show in the
  // logs (the chaos run's overlap check reads these, and a post-mortem can too).
  const lockHeld = { since: Date.now(), until: 0 };
  log.debug({ partitions, lockHeld: { since: lockHeld.since } }, 'partition lock taken');

  const lockLost = new AbortController();
  const renewal = setInterval(() => {
    lock.renew().then(
      (held) => held || lockLost.abort(),
      (err) => log.warn({ err }, 'partition lock renewal failed'),
    );
  }, settings.SWEEP_LOCK_TTL / 3);
  // Progress and the job log reach Redis at most once a second and once at the end, sent with
  // the next chunk's lock check instead of waited for on their own: a chunk costs one database
  // round trip and one Redis round trip (the lock check, which must come before every chunk).
  // They are for people watching; failing to record them does not fail the sweep.
  type Progress = { chunks: number; finalized: number; lastChunk: number };
  let reported = { at: performance.now(), chunks: 0, finalized: 0 };
  let latest: Progress = { chunks: 0, finalized: 0, lastChunk: 0 };
  let pending: Promise<unknown> = Promise.resolve();
  const report = (p: Progress) => {
    const from = reported;
    reported = { at: performance.now(), chunks: p.chunks, finalized: p.finalized };
    pending = Promise.all([
      pending,
      job.updateProgress(p),
      job.log(
        `chunks ${from.chunks + 1}-${p.chunks}: ${p.finalized - from.finalized} rows timed out (${p.finalized} in this job)`,
      ),
    ]).catch((err) => log.warn({ err }, 'could not record the job progress'));
  };
  // An operator's pause parks the job: it stops before its next chunk and continues later.
  const park = new AbortController();
  let parkedBy: ProductPause | undefined;
  const signal = AbortSignal.any([ctx.shutdown, lockLost.signal, park.signal]);
  const waitedMs: WaitedMs = {};
  const { parkedAt } = job.data;
  if (parkedAt !== undefined)
    ctx.gate.recordWait('paused', Math.max(0, Date.now() - parkedAt), waitedMs);
  let status: SweepStatus;
  try {
    status = await sweepPartition(ctx.pool, {
      partition,
      partitions,
      staleAfterMs: settings.STALE_AFTER,
      chunkSize: settings.SWEEP_CHUNK_SIZE,
      timeBudgetMs: settings.SWEEP_TIME_BUDGET,
      signal,
      // The one gate before each chunk: pause, replica lag, load, pacing (src/control/).
      beforeChunk: async () => {
        // The lock check and the gate's pause read go out together: one Redis round trip when
        // nothing holds the chunk back. A lock lost while the gate waits aborts `signal`.
        const renewing = Promise.all([lock.renew(), pending]);
        const limit = await ctx.gate.beforeChunk(settings.SWEEP_CHUNK_SIZE, signal, waitedMs);
        const [held] = await renewing;
        if (limit === null) return undefined; // stopping: the loop sees the signal
        if (typeof limit !== 'number') {
          parkedBy = limit;
          park.abort();
          return undefined;
        }
        if (!held) {
          lockLost.abort();
          throw new LockLostError();
        }
        return limit;
      },
      onChunk: async (p) => {
        latest = p;
        if (performance.now() - reported.at >= REPORT_EVERY_MS) report(p);
        await ctx.gate.afterChunk(p.limit, p.lastChunk);
      },
    });
    if (latest.chunks > reported.chunks) report(latest);
  } finally {
    clearInterval(renewal);
    await pending;
    lockHeld.until = Date.now();
    await lock
      .release()
      .catch((err) => log.warn({ err }, 'partition lock release failed; it expires by itself'));
  }

  if (Object.keys(waitedMs).length)
    status.waitedMs = Object.fromEntries(
      Object.entries(waitedMs).map(([reason, ms]) => [reason, Math.round(ms)]),
    );
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
  // Out of time, or shutting down: the rest goes to a new job that any worker may take at once.
  // When the lock was lost, its new holder carries on instead.
  if (parkedBy) {
    status.parked = 'paused';
    await job.log(`paused by ${parkedBy.by}: parked before chunk ${status.chunks + 1}`);
  }
  if (!status.drained && !lockLost.signal.aborted)
    await continuePartition(
      ctx.sq,
      job,
      settings,
      parkedBy ? { delayMs: parkDelay(parkedBy), parkedAt: Date.now() } : undefined,
    );
  return earlier ? { ...status, finalized: earlier + status.finalized } : status;
}
