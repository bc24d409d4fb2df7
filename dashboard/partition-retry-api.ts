import { randomBytes } from 'node:crypto';
import { type Request, type Response, Router } from 'express';
import type { Config } from '../src/config.ts';
import type { Pool } from '../src/db/pool.ts';
import type { Logger } from '../src/log.ts';
import { newRunId } from '../src/queue/job-ids.ts';
import { addRunFlow } from '../src/queue/run-flow.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import { failingPartitions } from '../src/read/failures.ts';
import type { RedisClient } from '../src/redis-client.ts';
import { readRecentRuns } from '../src/run-history/database.ts';
import { readRecentRunsFromRedis } from '../src/run-history/redis.ts';
import { sendError } from './errors.ts';

/**
 * "Retry partition N now" (the overview's alert button): POST /api/partitions/:partition/retry
 * starts a run of that one failing partition at once, with the usual retries. It is a run of its
 * own, not the current run's claim, so it neither waits for nor holds up the scheduled runs; the
 * partition lock keeps it apart from any other sweep of the same ids. The alert clears once it
 * succeeds. Same-origin and authenticated like every POST.
 */
export function partitionRetryRouter(deps: {
  pool: Pool;
  sq: SweepQueue;
  redis: RedisClient;
  logger: Logger;
  settings: Pick<Config, 'SWEEP_ATTEMPTS'>;
}): Router {
  const router = Router();
  router.post('/api/partitions/:partition/retry', async (req: Request, res: Response) => {
    const raw = String(req.params.partition);
    const partition = /^\d{1,4}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isInteger(partition)) {
      sendError(res, 400, 'is not a partition number', 'partition');
      return;
    }
    const runs = await readRecentRuns(deps.pool, 50).catch(() =>
      readRecentRunsFromRedis(deps.sq, deps.redis, 50),
    );
    const failing = failingPartitions(runs).find((f) => f.partition === partition);
    if (!failing) {
      sendError(res, 409, `partition ${partition} is not failing: nothing to retry`, 'partition');
      return;
    }
    const runId = newRunId(Date.now(), randomBytes(4).toString('hex'));
    await addRunFlow(
      deps.sq,
      { runId, trigger: 'retry', partitions: failing.partitions, only: [partition] },
      deps.settings,
    );
    deps.logger.info({ runId, partition }, 'partition retry requested from the dashboard');
    res.status(202).json({ runId, partition, partitions: failing.partitions });
  });
  return router;
}
