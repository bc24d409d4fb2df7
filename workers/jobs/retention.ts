import type { Job } from 'bullmq';
import { readProductPause } from '../../src/pause.ts';
import { recordRetentionInDatabase } from '../../src/run-history/database.ts';
import { deleteExpiredEntries } from '../../src/sweep/retention.ts';
import type { RetentionStatus } from '../../src/sweep/status.ts';
import type { JobContext } from '../job-context.ts';

/**
 * The hourly retention job: deletes completed rows older than RETENTION (drops whole time
 * partitions on the partitioned layout); failures retry.
 */
export async function processRetention(
  job: Job,
  ctx: JobContext,
): Promise<RetentionStatus | { skipped: 'RETENTION=off' | 'paused' }> {
  if (ctx.settings.RETENTION === null) return { skipped: 'RETENTION=off' };
  const paused = () => readProductPause(ctx.sq, ctx.redis).then((p) => p !== null);
  // A pause stops retention too: not now, and not after the chunk under way (next hour again).
  if (await paused()) return { skipped: 'paused' };
  const startedAt = new Date().toISOString();
  const status = await deleteExpiredEntries(ctx.pool, {
    retentionMs: ctx.settings.RETENTION,
    timeBudgetMs: ctx.settings.SWEEP_TIME_BUDGET,
    signal: ctx.shutdown,
    stopBefore: paused,
    // The same gate as the sweep's chunks: retention's deletes count against the fleet's rate.
    beforeChunk: async (want) => {
      const limit = await ctx.gate.beforeChunk(want, ctx.shutdown, {});
      return typeof limit === 'number' ? limit : null;
    },
    afterChunk: (granted, deleted) => ctx.gate.afterChunk(granted, deleted),
    logger: ctx.logger,
  });
  await recordRetentionInDatabase(ctx.pool, {
    runId: `retention-${job.id}-${job.attemptsMade}`,
    startedAt,
    status,
  }).catch((err) => ctx.logger.warn({ err }, 'could not record the retention run in PostgreSQL'));
  if (status.error) throw new Error(status.error);
  ctx.logger.info({ status }, 'retention run finished');
  return status;
}
