import { type Request, type Response, Router } from 'express';
import type { Pool } from '../db/pool.ts';
import type { Metrics } from '../metrics.ts';
import { pingRedis, type RedisClient } from '../redis-client.ts';

/**
 * /healthz: the process is up (liveness; it never checks dependencies, so an outage does not
 * get pods restarted in a loop). /readyz: PostgreSQL and Redis answer. /metrics: Prometheus.
 */
export function probesRouter(deps: { pool: Pool; redis: RedisClient; metrics?: Metrics }): Router {
  const router = Router();
  router.get('/healthz', (_req: Request, res: Response) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req: Request, res: Response) => {
    const [postgres, redis] = await Promise.all([
      check(() => deps.pool.query('SELECT 1')),
      check(() => pingRedis(deps.redis)),
    ]);
    const ready = postgres === 'ok' && redis === 'ok';
    res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'unavailable', postgres, redis });
  });
  const { metrics } = deps;
  if (metrics) {
    router.get('/metrics', async (_req: Request, res: Response) => {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    });
  }
  return router;
}

async function check(probe: () => Promise<unknown>): Promise<string> {
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('no answer within 2 s')), 2_000).unref(),
      ),
    ]);
    return 'ok';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
