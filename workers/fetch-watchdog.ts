import type { Queue } from 'bullmq';
import type { Logger } from '../src/log.ts';

/**
 * BullMQ 6.7 on an ioredis Cluster: after the master of the queue's slot fails over, a Worker
 * whose queue was idle at that moment may never fetch again (its fetch loop stays parked). Seen
 * in about one failover in three in test/redis-ha.test.ts and in a standalone reproduction;
 * jobs then wait forever although Redis answers. This watchdog notices a queue with jobs due for
 * longer than `stuckAfterMs` while this process's Worker for it runs nothing and has started
 * nothing, and asks for that Worker to be replaced. A healthy idle Worker takes a due job within
 * its block timeout (5 s), so a healthy one is never replaced.
 */
export type FetchState = {
  /** Jobs of this Worker running now. */
  active: number;
  /** When this Worker last started a job (or was created). */
  lastStart: number;
};

export function watchFetching(options: {
  queue: Queue;
  state: () => FetchState;
  replace: () => void;
  stuckAfterMs: number;
  logger: Logger;
}): () => void {
  const { queue, state, replace, stuckAfterMs, logger } = options;
  let dueSince: number | undefined;
  let checking = false;
  const check = async () => {
    if (checking) return;
    checking = true;
    try {
      const now = Date.now();
      const due = await hasDueJobs(queue, now);
      const s = state();
      if (!due || s.active > 0) {
        dueSince = undefined;
        return;
      }
      dueSince ??= now;
      if (now - Math.max(dueSince, s.lastStart) < stuckAfterMs) return;
      logger.warn(
        { queue: queue.name, stuckMs: now - Math.max(dueSince, s.lastStart) },
        'queue worker stopped taking jobs (after a Redis failover); replacing it',
      );
      dueSince = undefined;
      replace();
    } catch {
      // Redis is away: the connection's own logging says so; check again later.
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(check, Math.min(5_000, stuckAfterMs / 2));
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Jobs waiting, or delayed jobs whose time has come, and room for them: with the fleet's stream
 * cap (SWEEP_MAX_STREAMS) reached, waiting jobs are the cap at work, not a stuck Worker.
 */
async function hasDueJobs(queue: Queue, now: number): Promise<boolean> {
  const [cap, active] = await Promise.all([queue.getGlobalConcurrency(), queue.getActiveCount()]);
  if (cap !== null && active >= cap) return false;
  const counts = await queue.getJobCounts('waiting', 'prioritized');
  if ((counts.waiting ?? 0) + (counts.prioritized ?? 0) > 0) return true;
  const [next] = await queue.getJobs(['delayed'], 0, 0, true);
  return next !== undefined && next.timestamp + (next.delay ?? 0) < now;
}
