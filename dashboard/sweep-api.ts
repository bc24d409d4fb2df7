import { type Request, type Response, Router } from 'express';
import type { Pool } from '../src/db/pool.ts';
import { type OwnSettings, readSettingsToCountWith } from '../src/fleet/drift.ts';
import type { Logger } from '../src/log.ts';
import { requestSweep } from '../src/queue/request-sweep.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import { readSweepProgress } from '../src/read/sweep-progress.ts';
import type { RedisClient } from '../src/redis-client.ts';
import { dryRun } from '../src/sweep/dry-run.ts';
import { sendError } from './errors.ts';

/** BullMQ job ids: no ":" and nothing a Redis key should not hold. */
const JOB_ID = /^[\w.-]{1,128}$/;

/**
 * "Sweep now": POST /api/sweeps asks for a sweep and answers with the tick's job id; GET
 * /api/sweeps/:tickJobId tells how it goes. Pressing twice is harmless: a waiting tick is
 * deduplicated, and a tick that finds a run under way joins it instead of starting another.
 * GET /api/dry-run says what a sweep would finalize now, writing nothing.
 */
export function sweepRouter(deps: {
  sq: SweepQueue;
  redis: RedisClient;
  pool: Pool;
  settings: OwnSettings;
  base: string;
  logger: Logger;
}): Router {
  const router = Router();
  // The dry run: what a sweep would finalize now, per partition, with the workers' settings.
  // Reads only; operator-only like every other sweep control.
  router.get('/api/dry-run', async (_req: Request, res: Response) => {
    const { settings, source } = await readSettingsToCountWith(deps, deps.settings);
    res.json(
      await dryRun(deps.pool, {
        staleAfterMs: settings.STALE_AFTER,
        partitions: settings.SWEEP_PARTITIONS,
        settingsSource: source,
      }),
    );
  });
  router.post('/api/sweeps', async (_req: Request, res: Response) => {
    const tickJobId = await requestSweep(deps.sq);
    deps.logger.info({ tickJobId }, 'sweep requested from the dashboard');
    const statusUrl = `${deps.base}/api/sweeps/${encodeURIComponent(tickJobId)}`;
    res.status(202).location(statusUrl).json({ tickJobId, statusUrl });
  });
  router.get('/api/sweeps/:tickJobId', async (req: Request, res: Response) => {
    const id = String(req.params.tickJobId);
    if (!JOB_ID.test(id)) {
      sendError(res, 400, 'is not a job id', 'tickJobId');
      return;
    }
    const state = await readSweepProgress(deps.sq, id);
    if (!state) {
      sendError(res, 404, `no sweep request ${id} (finished requests are removed after a while)`);
      return;
    }
    res.json(state);
  });
  return router;
}
