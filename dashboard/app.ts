import express, { type Express, Router } from 'express';
import type { Config } from '../src/config.ts';
import { createPool, createReadinessPool, type Pool } from '../src/db/pool.ts';
import { probesRouter, readinessCheck } from '../src/http/probes.ts';
import type { Logger } from '../src/log.ts';
import { createMetrics, type Metrics } from '../src/metrics.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import type { OverviewSettings } from '../src/read/overview.ts';
import { readOverview } from '../src/read/overview.ts';
import type { RedisClient } from '../src/redis-client.ts';
import { AuditLogStore } from '../src/store/store.ts';
import { admission } from './admission.ts';
import { auditLogRouter } from './audit-log-api.ts';
import { basicAuth, type Logins, readerLimits } from './auth.ts';
import { bullBoardRouter } from './bull-board.ts';
import { sameOriginOnly } from './csrf.ts';
import { errorHandler, notFound } from './errors.ts';
import { LoginThrottle } from './login-throttle.ts';
import { openApiRouter } from './openapi.ts';
import { overviewRouter } from './overview-routes.ts';
import { partitionRetryRouter } from './partition-retry-api.ts';
import { pauseRouter } from './pause-api.ts';
import { sweepRouter } from './sweep-api.ts';

export type DashboardDeps = {
  config: Pick<
    Config,
    | 'DASHBOARD_BASE_PATH'
    | 'DASHBOARD_USER'
    | 'DASHBOARD_PUBLIC_URL'
    | 'DASHBOARD_TRUSTED_PROXIES'
    | 'LIST_SAFETY_MARGIN'
    | 'API_POOL_SIZE'
    | 'API_MAX_QUEUED'
    | 'API_MAX_WAIT'
  > &
    OverviewSettings;
  /** The overview and metrics' connections (see createDashboardPools). */
  pool: Pool;
  /** /readyz's one connection of its own. */
  readinessPool: Pool;
  /** The audit-log API's own connections, so that API load never starves the rest. */
  apiPool: Pool;
  /** A producer connection (connectProducer); the caller owns it, the queue and the pool. */
  redis: RedisClient;
  sq: SweepQueue;
  metrics: Metrics;
  /** The operator's login and, when DASHBOARD_READER_PASSWORD is set, the reader's. */
  logins: Logins;
  logger: Logger;
};

/**
 * The dashboard: overview page and its JSON, "Sweep now", Bull Board, the audit-log API and
 * the probes, all under DASHBOARD_BASE_PATH. Everything but /healthz and /readyz needs Basic
 * auth (the reader's login only reads: auth.ts), and every state-changing request must come
 * from the dashboard's own origin.
 */
export function createDashboardApp(deps: DashboardDeps): Express {
  const base = deps.config.DASHBOARD_BASE_PATH;
  const { pool, redis, sq, logger } = deps;
  const store = new AuditLogStore(deps.apiPool, {
    logger,
    listSafetyMarginMs: deps.config.LIST_SAFETY_MARGIN,
  });
  const probes = probesRouter({
    readiness: readinessCheck({ pool: deps.readinessPool, redis, logger }),
    metrics: deps.metrics,
    logger,
  });

  const router = Router();
  // Liveness and readiness stay open: orchestrators probe without credentials.
  router.get(['/healthz', '/readyz'], probes);
  const { logins } = deps;
  const users = [logins.operator.user, ...(logins.reader ? [logins.reader.user] : [])];
  router.use(
    basicAuth(logins, new LoginThrottle(users, logger)),
    readerLimits,
    sameOriginOnly(deps.config.DASHBOARD_PUBLIC_URL),
  );
  router.use(probes); // /metrics
  router.use('/queues', bullBoardRouter(sq, `${base}/queues`, `${base}/`));
  router.use(overviewRouter({ pool, sq, redis, base, settings: deps.config, logger }));
  router.use(sweepRouter({ sq, redis, pool, settings: deps.config, base, logger }));
  router.use(partitionRetryRouter({ pool, sq, redis, logger, settings: deps.config }));
  router.use(
    '/v1/audit-log',
    admission({
      concurrency: deps.config.API_POOL_SIZE,
      maxQueued: deps.config.API_MAX_QUEUED,
      maxWaitMs: deps.config.API_MAX_WAIT,
      onReject: (reason) => deps.metrics.apiRejected.inc({ reason }),
    }),
  );
  router.use(pauseRouter({ sq, redis, logger, user: deps.config.DASHBOARD_USER }));
  router.use(auditLogRouter({ store, safetyMarginMs: deps.config.LIST_SAFETY_MARGIN, logger }));
  router.use(openApiRouter(base));
  router.use(notFound);

  const errors = errorHandler(logger);
  const app = express().disable('x-powered-by');
  // req.ip is the client's address as the last trusted proxy saw it (the login back-off's key).
  app.set('trust proxy', deps.config.DASHBOARD_TRUSTED_PROXIES || false);
  app.use(errors.recoveries);
  app.set('query parser', 'simple');
  app.use((_req, res, next) => {
    // No framing anywhere: a framed Bull Board or "Sweep now" could be clicked through an overlay.
    res
      .set('X-Content-Type-Options', 'nosniff')
      .set('X-Frame-Options', 'DENY')
      .set('Referrer-Policy', 'same-origin')
      // Nothing may run or load by default; the overview and Bull Board set their own policy.
      .set(
        'Content-Security-Policy',
        "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
      );
    next();
  });
  app.use(base || '/', router);
  app.use(notFound);
  app.use(errors.handler);
  return app;
}

/**
 * The dashboard's pools, all on DATABASE_READ_URL (DATABASE_URL when unset): the dashboard only
 * reads. The API's is its own, sized API_POOL_SIZE (admission control lets no more requests run
 * than it has connections), and every statement on it is bounded by API_STATEMENT_TIMEOUT;
 * /readyz has one connection of its own, so that no flood of probes reaches the others.
 */
export function createDashboardPools(config: Config, logger: Logger) {
  const url = config.DATABASE_READ_URL ?? config.DATABASE_URL;
  return {
    pool: createPool(url, logger, { max: 5, applicationName: 'audit-sweeper dashboard' }),
    apiPool: createPool(url, logger, {
      max: config.API_POOL_SIZE,
      applicationName: 'audit-sweeper api',
      statementTimeoutMs: config.API_STATEMENT_TIMEOUT,
      genericPlans: true,
    }),
    readinessPool: createReadinessPool(url, logger),
  };
}

/**
 * A dashboard's metrics: its gauges from the same read as its overview (the fleet's cutoff,
 * health, live workers); an unreadable store makes its gauges NaN, logged once per scrape.
 */
export function createDashboardMetrics(deps: {
  pool: Pool;
  sq: SweepQueue;
  redis: RedisClient;
  config: OverviewSettings;
  logger: Logger;
}): Metrics {
  return createMetrics({
    role: 'dashboard',
    logger: deps.logger,
    overview: () =>
      readOverview(
        { pool: deps.pool, sq: deps.sq, redis: deps.redis },
        { settings: deps.config, reader: 'this dashboard' },
        20,
      ),
  });
}
