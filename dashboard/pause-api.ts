import express, { type Request, type Response, Router } from 'express';
import type { Logger } from '../src/log.ts';
import { parsePauseFor, pause, resume } from '../src/pause.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import type { RedisClient } from '../src/redis-client.ts';
import { sendError } from './errors.ts';

/**
 * The dashboard's Pause and Resume buttons: POST /api/pause `{"for": "30m", "reason": "..."}`
 * (both optional) and POST /api/resume. Like every write they need Basic auth and the
 * dashboard's own origin (sameOriginOnly runs before this router).
 */
export function pauseRouter(deps: {
  sq: SweepQueue;
  redis: RedisClient;
  logger: Logger;
  user: string;
}): Router {
  const router = Router();
  const body = express.json({ limit: '4kb' });
  router.post('/api/pause', body, async (req: Request, res: Response) => {
    const input = (req.body ?? {}) as { for?: unknown; reason?: unknown };
    let forMs: number | null = null;
    if (input.for !== undefined && input.for !== null && input.for !== '') {
      const parsed =
        typeof input.for === 'string' ? parsePauseFor(input.for) : { error: 'must be a string' };
      if ('error' in parsed) {
        sendError(res, 400, parsed.error, 'for');
        return;
      }
      forMs = parsed.ms;
    }
    if (
      input.reason !== undefined &&
      (typeof input.reason !== 'string' || input.reason.length > 500)
    ) {
      sendError(res, 400, 'must be text of at most 500 characters', 'reason');
      return;
    }
    const state = await pause(deps.sq, deps.redis, {
      by: `dashboard user ${deps.user}`,
      reason: (input.reason as string | undefined) ?? null,
      forMs,
    });
    deps.logger.warn({ pause: state }, 'sweeper paused from the dashboard');
    res.json({ paused: state });
  });
  router.post('/api/resume', async (_req: Request, res: Response) => {
    const ended = await resume(deps.sq, deps.redis);
    deps.logger.warn({ ended }, 'sweeper resumed from the dashboard');
    res.json({ resumed: ended !== null, ended });
  });
  return router;
}
