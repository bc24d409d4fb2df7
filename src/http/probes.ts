import type { NextFunction, Request, Response } from 'express';
import { Router } from 'express';
import type { Pool } from '../db/pool.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { pingRedis, type RedisClient } from '../redis-client.ts';

/** How long one readiness answer is reused: a flood of /readyz costs one check a second. */
export const READY_CACHE_MS = 1_000;

export type Readiness = { postgres: string; redis: string };

/**
 * The readiness check: PostgreSQL answers `SELECT 1` and Redis a PING, each within 2 s. It runs
 * on a pool of its own (`pool`: one connection, made for it) so that however many probes
 * arrive they never queue for the connections of the overview, the API or the sweep's chunks;
 * one check at a time (callers meanwhile share it) and its answer reused for READY_CACHE_MS.
 */
export function readinessCheck(deps: {
  pool: Pool;
  redis: RedisClient;
  logger?: Logger;
}): () => Promise<Readiness> {
  const logger = deps.logger ?? silentLogger;
  const last = { postgres: 'ok', redis: 'ok' };
  const report = (name: 'postgres' | 'redis', outcome: string) => {
    if (outcome !== last[name]) {
      if (outcome === 'ok') logger.info({ dependency: name }, 'readiness check passes again');
      else logger.warn({ dependency: name, error: outcome }, 'readiness check failed');
    }
    last[name] = outcome;
    return outcome === 'ok' ? 'ok' : 'unavailable';
  };
  let cached: { at: number; answer: Readiness } | undefined;
  let pending: Promise<Readiness> | undefined;
  return () => {
    if (cached && performance.now() - cached.at < READY_CACHE_MS)
      return Promise.resolve(cached.answer);
    pending ??= (async () => {
      const [postgres, redis] = await Promise.all([
        check(() => deps.pool.query('SELECT 1')).then((o) => report('postgres', o)),
        check(() => pingRedis(deps.redis)).then((o) => report('redis', o)),
      ]);
      cached = { at: performance.now(), answer: { postgres, redis } };
      return cached.answer;
    })().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

/**
 * /healthz: the process is up (liveness; it never checks dependencies, so an outage does not
 * get pods restarted in a loop). /readyz: PostgreSQL and Redis answer (readinessCheck).
 * /metrics: Prometheus.
 *
 * /healthz and /readyz need no credentials, so they answer in generic words ("ok",
 * "unavailable"): a driver's error text can name hosts, ports, users or databases. What failed
 * and why goes to the log, once each time a dependency's state changes.
 */
export function probesRouter(deps: {
  readiness: () => Promise<Readiness>;
  metrics?: Metrics;
  logger?: Logger;
}): Router {
  const logger = deps.logger ?? silentLogger;
  const router = Router();
  router.get('/healthz', (_req: Request, res: Response) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req: Request, res: Response) => {
    const { postgres, redis } = await deps.readiness();
    const ready = postgres === 'ok' && redis === 'ok';
    res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'unavailable', postgres, redis });
  });
  const { metrics } = deps;
  if (metrics) {
    router.get('/metrics', async (_req: Request, res: Response) => {
      let text: string;
      try {
        text = await metrics.registry.metrics();
      } catch (err) {
        // The gauges catch their own failures; this is anything else. Never a stack trace.
        logger.error({ err }, 'metrics could not be collected');
        res.status(503).type('text').send('metrics unavailable\n');
        return;
      }
      res.type(metrics.registry.contentType).send(text);
    });
  }
  return router;
}

/** The last handler of a probe server: a plain-text 500, the details in the log. */
export function probeErrorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    logger.error({ err, url: req.originalUrl }, 'probe request failed');
    res.status(500).type('text').send('internal error\n');
  };
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
