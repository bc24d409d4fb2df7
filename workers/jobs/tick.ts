import type { Job } from 'bullmq';
import { readProductPause } from '../../src/pause.ts';
import { abandonRun, claimOrJoinRun } from '../../src/queue/current-run.ts';
import type { TickData, TickResult } from '../../src/queue/jobs.ts';
import { addRunFlow } from '../../src/queue/run-flow.ts';
import { failingPartitions } from '../../src/read/failures.ts';
import { readRecentRuns } from '../../src/run-history/database.ts';
import { createFuturePartitions } from '../../src/time-partitions/premake.ts';
import type { JobContext } from '../job-context.ts';

/**
 * A tick (from the scheduler, "Sweep now", `sweep`, Bull Board's "Run now") starts a run of
 * every partition, or joins the run still under way; while paused it does nothing.
 */
export async function processTick(job: Job<TickData>, ctx: JobContext): Promise<TickResult> {
  const partitions = ctx.settings.SWEEP_PARTITIONS;
  // Time partitions ahead of the application's writes, paused or not: a catalog read when none
  // is missing, a no-op on the plain layout. It never throws; a failure is logged and alerted on
  // (audit_sweeper_time_partitions_ahead_seconds), and the default partition holds rows meanwhile.
  await createFuturePartitions(ctx.pool, ctx.logger);
  // Paused: no new run, so ticks never pile up jobs; a run under way waits at its next chunk.
  const paused = await readProductPause(ctx.sq, ctx.redis);
  if (paused) {
    ctx.logger.info({ pausedBy: paused.by }, 'sweeper paused: tick starts no run');
    return { runId: null, partitions, skipped: 'paused', pausedBy: paused.by };
  }
  const { runId, claimed } = await claimOrJoinRun(ctx.sq, ctx.redis);
  if (!claimed) return { runId, partitions, joined: true };
  const trigger = job.data.trigger ?? 'manual';
  // Partitions that failed last time get a single attempt in this run (see addRunFlow).
  const failing = await readRecentRuns(ctx.pool, 20)
    .then((runs) => failingPartitions(runs).filter((f) => f.partitions === partitions))
    .catch(() => []);
  try {
    await addRunFlow(
      ctx.sq,
      { runId, trigger, partitions },
      ctx.settings,
      new Set(failing.map((f) => f.partition)),
    );
  } catch (err) {
    // Best effort: with Redis away this fails too, and the claim's grace ends it instead.
    await abandonRun(ctx.sq, ctx.redis, runId).catch(() => false);
    throw err;
  }
  return { runId, partitions };
}
