import type { Job } from 'bullmq';
import { claimOrJoinRun } from '../../src/queue/current-run.ts';
import type { TickData, TickResult } from '../../src/queue/jobs.ts';
import { addRunFlow } from '../../src/queue/run-flow.ts';
import { failingPartitions } from '../../src/read/failures.ts';
import { readRecentRuns } from '../../src/read/run-history.ts';
import type { JobContext } from '../job-context.ts';

/**
 * A tick (from the scheduler, "Sweep now", `sweep`, Bull Board's "Run now") starts a run of
 * every partition, or joins the run still under way.
 */
export async function processTick(job: Job<TickData>, ctx: JobContext): Promise<TickResult> {
  const partitions = ctx.settings.SWEEP_PARTITIONS;
  const { runId, claimed } = await claimOrJoinRun(ctx.sq, ctx.redis);
  if (!claimed) return { runId, partitions, joined: true };
  const trigger = job.data.trigger ?? 'manual';
  // Partitions that failed last time get a single attempt in this run (see addRunFlow).
  const failing = await readRecentRuns(ctx.pool, 20)
    .then((runs) => failingPartitions(runs).filter((f) => f.partitions === partitions))
    .catch(() => []);
  await addRunFlow(
    ctx.sq,
    { runId, trigger, partitions },
    ctx.settings,
    new Set(failing.map((f) => f.partition)),
  );
  return { runId, partitions };
}
