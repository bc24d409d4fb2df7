import type { Config } from '../config.ts';
import { JobName, SchedulerId, type TickData } from './jobs.ts';
import { KEEP_COMPLETED, KEEP_FAILED, type SweepQueue } from './sweep-queue.ts';

/** How often the retention job runs when RETENTION is on. */
export const RETENTION_EVERY_MS = 3_600_000;

/**
 * Puts the schedules in Redis. Upsert is atomic and idempotent per id, so every worker calls it
 * at start and whenever its Redis connection comes back (a Redis that lost its data gets them
 * again without a redeploy); no process is special.
 */
export async function upsertSchedulers(
  sq: SweepQueue,
  settings: Pick<Config, 'SWEEP_EVERY' | 'RETENTION'>,
): Promise<void> {
  const { queue } = sq;
  const opts = { removeOnComplete: KEEP_COMPLETED, removeOnFail: KEEP_FAILED, attempts: 3 };
  await queue.upsertJobScheduler(
    SchedulerId.sweep,
    { every: settings.SWEEP_EVERY },
    { name: JobName.tick, data: { trigger: 'schedule' } satisfies TickData, opts },
  );
  if (settings.RETENTION === null) await queue.removeJobScheduler(SchedulerId.retention);
  else
    await queue.upsertJobScheduler(
      SchedulerId.retention,
      { every: RETENTION_EVERY_MS },
      { name: JobName.retention, opts },
    );
}
