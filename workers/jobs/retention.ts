import type { Job } from 'bullmq';
import type { RetentionStatus } from '../../src/queue/jobs.ts';
import { deleteExpiredEntries } from '../../src/sweep/retention.ts';
import type { JobContext } from '../job-context.ts';

/** The hourly retention job: deletes completed rows older than RETENTION; failures retry. */
export async function processRetention(
  _job: Job,
  ctx: JobContext,
): Promise<RetentionStatus | { skipped: 'RETENTION=off' }> {
  if (ctx.settings.RETENTION === null) return { skipped: 'RETENTION=off' };
  const status = await deleteExpiredEntries(ctx.pool, {
    retentionMs: ctx.settings.RETENTION,
    timeBudgetMs: ctx.settings.SWEEP_TIME_BUDGET,
    signal: ctx.shutdown,
  });
  if (status.error) throw new Error(status.error);
  ctx.logger.info({ status }, 'retention run finished');
  return status;
}
