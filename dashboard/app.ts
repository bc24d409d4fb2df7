import express, { type Express, Router } from 'express';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config.ts';
import type { Pool } from '../src/db/pool.ts';
import { probesRouter } from '../src/http/probes.ts';
import type { Logger } from '../src/log.ts';
import type { Metrics } from '../src/metrics.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import { AuditLogStore } from '../src/store/store.ts';
import { auditLogRouter } from './audit-log-api.ts';
import { basicAuth, type Credentials } from './auth.ts';
import { bullBoardRouter } from './bull-board.ts';
import { sameOriginOnly } from './csrf.ts';
import { errorHandler, notFound } from './errors.ts';
import { overviewRouter } from './overview-routes.ts';
import { sweepRouter } from './sweep-api.ts';

export type DashboardDeps = {
  config: Pick<
    Config,
    'DASHBOARD_BASE_PATH' | 'LIST_SAFETY_MARGIN' | 'STALE_AFTER' | 'SWEEP_PARTITIONS'
  >;
  pool: Pool;
  /** A producer connection (connectProducer); the caller owns it, the queue and the pool. */
  redis: Redis;
  sq: SweepQueue;
  metrics: Metrics;
  credentials: Credentials;
  logger: Logger;
};

/**
 * The dashboard: overview page and its JSON, "Sweep now", Bull Board, the audit-log API and
 * the probes, all under DASHBOARD_BASE_PATH. Everything but /healthz and /readyz needs Basic
 * auth, and every state-changing request must come from the dashboard's own origin.
 */
export function createDashboardApp(deps: DashboardDeps): Express {
  const base = deps.config.DASHBOARD_BASE_PATH;
  const { pool, redis, sq, logger } = deps;
  const store = new AuditLogStore(pool, {
    logger,
    listSafetyMarginMs: deps.config.LIST_SAFETY_MARGIN,
  });
  const probes = probesRouter({ pool, redis, metrics: deps.metrics });

  const router = Router();
  // Liveness and readiness stay open: orchestrators probe without credentials.
  router.get(['/healthz', '/readyz'], probes);
  router.use(basicAuth(deps.credentials), sameOriginOnly);
  router.use(probes); // /metrics
  router.use('/queues', bullBoardRouter(sq, `${base}/queues`, `${base}/`));
  router.use(overviewRouter({ pool, sq, redis, base, settings: deps.config }));
  router.use(sweepRouter({ sq, base, logger }));
  router.use(auditLogRouter({ store, safetyMarginMs: deps.config.LIST_SAFETY_MARGIN }));
  router.use(notFound);

  const errors = errorHandler(logger);
  const app = express().disable('x-powered-by');
  app.use(errors.recoveries);
  app.set('query parser', 'simple');
  app.use((_req, res, next) => {
    // No framing anywhere: a framed Bull Board or "Sweep now" could be clicked through an overlay.
    res
      .set('X-Content-Type-Options', 'nosniff')
      .set('X-Frame-Options', 'DENY')
      .set('Referrer-Policy', 'same-origin');
    next();
  });
  app.use(base || '/', router);
  app.use(notFound);
  app.use(errors.handler);
  return app;
}
