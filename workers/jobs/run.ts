import { type Job, UnrecoverableError } from 'bullmq';
import { runJobId } from '../../src/queue/job-ids.ts';
import type { RunData, RunSummary } from '../../src/queue/jobs.ts';
import { finalizedInRun, readRunChildren } from '../../src/read/run-children.ts';
import { recordRunInDatabase } from '../../src/run-history/database.ts';
import { recordRunInRedis } from '../../src/run-history/redis.ts';
import type { WaitedMs, WaitReason } from '../../src/sweep/status.ts';
import type { JobContext } from '../job-context.ts';

/**
 * A run's parent job, processed once all its partition jobs are done: adds up their statuses
 * into the run's summary, records it in the history and ends the run's claim.
 */
export async function processRun(job: Job<RunData>, ctx: JobContext): Promise<RunSummary> {
  await checkMadeByProduct(job);
  const children = await readRunChildren(ctx.sq, job);
  const { finished } = children;
  const summary: RunSummary = {
    runId: job.data.runId,
    trigger: job.data.trigger,
    partitions: job.data.partitions,
    finalized: finalizedInRun(children),
    chunks: finished.reduce((n, s) => n + s.chunks, 0),
    startedAt: job.data.startedAt,
    finishedAt: new Date().toISOString(),
    durationMs: Date.now() - Date.parse(job.data.startedAt),
    skippedPartitions: [...new Set(finished.filter((s) => s.skipped).map((s) => s.partition))].sort(
      (a, b) => a - b,
    ),
    failedPartitions: children.failed.map(({ partition, error }) => ({ partition, error })),
    ...(job.data.only ? { only: job.data.only } : {}),
    workerSettings: ctx.fleetSettings,
  };
  const waitedMs: WaitedMs = {};
  for (const s of finished)
    for (const [reason, ms] of Object.entries(s.waitedMs ?? {}) as [WaitReason, number][])
      waitedMs[reason] = (waitedMs[reason] ?? 0) + ms;
  if (Object.keys(waitedMs).length) summary.waitedMs = waitedMs;
  // PostgreSQL first: the history that survives Redis. If the database is away the Redis list
  // still has the run, and the run's totals are in its job.
  await recordRunInDatabase(ctx.pool, summary).catch((err) =>
    ctx.logger.warn({ err, runId: summary.runId }, 'could not record the run in PostgreSQL'),
  );
  await recordRunInRedis(ctx.sq, ctx.redis, summary);
  ctx.metrics.sweepRuns.inc({
    outcome: summary.failedPartitions.length ? 'partial_failure' : 'success',
  });
  const log = {
    runId: summary.runId,
    finalized: summary.finalized,
    failed: summary.failedPartitions,
    ...(summary.waitedMs ? { waitedMs: summary.waitedMs } : {}),
  };
  if (summary.failedPartitions.length)
    ctx.logger.error(log, 'sweep run finished with failed partitions');
  // Timed-out rows mean completions were lost upstream: worth a warning, not just a count.
  else if (summary.finalized > 0) ctx.logger.warn(log, 'sweep run timed out audit log entries');
  else ctx.logger.info(log, 'sweep run finished');
  return summary;
}

/**
 * Only a run the product made goes into the history: its job id names its run id, and it is
 * the parent of the run's partition jobs. A `run` job added or duplicated by hand (Bull Board)
 * has neither; summing its non-existent partitions would record a run that never happened.
 */
async function checkMadeByProduct(job: Job<RunData>): Promise<void> {
  if (job.id !== runJobId(job.data.runId))
    throw new UnrecoverableError(
      `not a run made by audit-sweeper: its job id is ${JSON.stringify(job.id)}, a run's is ${JSON.stringify(runJobId(job.data.runId))}`,
    );
  const {
    processed = 0,
    failed = 0,
    ignored = 0,
    unprocessed = 0,
  } = await job.getDependenciesCount();
  if (processed + failed + ignored + unprocessed === 0)
    throw new UnrecoverableError('not a run made by audit-sweeper: it has no partition jobs');
}
