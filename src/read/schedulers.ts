import type { SweepQueue } from '../queue/sweep-queue.ts';

export type SchedulerInfo = {
  id: string;
  jobName: string;
  everyMs: number | null;
  pattern: string | null;
  nextRunAt: string | null;
};

/** The job schedulers in Redis (put there by every worker at start). */
export async function readSchedulers(sq: SweepQueue): Promise<SchedulerInfo[]> {
  const schedulers = await sq.queue.getJobSchedulers();
  return schedulers.map((s) => ({
    id: s.key,
    jobName: s.name,
    everyMs: s.every ? Number(s.every) : null,
    pattern: s.pattern ?? null,
    nextRunAt: s.next ? new Date(s.next).toISOString() : null,
  }));
}
