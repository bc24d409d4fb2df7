import type { AddressInfo } from 'node:net';
import {
  createDashboardApp,
  createDashboardMetrics,
  createDashboardPools,
} from '../../dashboard/app.ts';
import { resolveCredentials } from '../../dashboard/auth.ts';
import type { Config } from '../config.ts';
import { errorMessage } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { createRedis, refuseWrongRedisTopology } from '../queue/connection.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';
import { closeServer, listen, runUntilSignal, waitForSignal } from './lifecycle.ts';

/**
 * `audit-sweeper dashboard`: the operator dashboard, Bull Board, the audit-log API and the
 * probes on DASHBOARD_PORT. Stateless: run as many as you like behind a load balancer (give
 * them one DASHBOARD_PASSWORD, or each generates its own).
 */
export async function run(config: Config): Promise<number> {
  // Listening first: a SIGTERM while start-up waits for Redis shuts down cleanly once it is over.
  const signal = waitForSignal();
  const logger = createLogger(config.LOG_LEVEL, 'dashboard');
  const dashboard = await startDashboardService(config, logger);
  return runUntilSignal(logger, dashboard.close, undefined, signal);
}

/** How long the dashboard waits for Redis at start before serving without it. */
const REDIS_WAIT_AT_START_MS = 10_000;

/**
 * The dashboard's server and its connections; `close` shuts them down. `metrics` lets a process
 * that also sweeps (`start`) serve its worker's counters here; `port` is the one it took (a
 * DASHBOARD_PORT of 0 takes a free one).
 */
export async function startDashboardService(
  config: Config,
  logger: Logger,
  options: { metrics?: Metrics } = {},
) {
  const logins = resolveCredentials(config, logger);
  // A REDIS_URL of the wrong topology is a bad setting (exit 2). A Redis that does not answer is
  // an outage: the dashboard starts anyway (its probes, the audit-log API and what PostgreSQL can
  // tell work without it) and the connection keeps trying in the background.
  await refuseWrongRedisTopology(config, logger);
  const redis = createRedis(config, 'producer', logger);
  const connected = redis.connect().then(
    () => true,
    (err) => {
      logger.warn(
        { err: errorMessage(err) },
        'Redis unreachable at start (check REDIS_URL); serving without it and reconnecting',
      );
      return false;
    },
  );
  // A Redis that answers is waited for (a cluster client needs its slots before the first
  // request), but never longer than this: a refused connection fails at once anyway.
  await Promise.race([
    connected,
    new Promise((r) => setTimeout(r, REDIS_WAIT_AT_START_MS).unref()),
  ]);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  const { pool, apiPool, readinessPool } = createDashboardPools(config, logger);
  const metrics = options.metrics ?? createDashboardMetrics({ pool, sq, redis, config, logger });
  const app = createDashboardApp({
    config,
    pool,
    apiPool,
    readinessPool,
    redis,
    sq,
    metrics,
    logins,
    logger,
  });
  const server = await listen(app, config.DASHBOARD_PORT);
  const { port } = server.address() as AddressInfo;
  logger.info(
    {
      port,
      basePath: config.DASHBOARD_BASE_PATH || '/',
      operator: logins.operator.user,
      reader: logins.reader?.user ?? null,
      publicUrl: config.DASHBOARD_PUBLIC_URL ?? null,
      trustedProxies: config.DASHBOARD_TRUSTED_PROXIES,
    },
    'dashboard listening',
  );
  return {
    port,
    metrics,
    close: async () => {
      await closeServer(server);
      await Promise.allSettled([
        closeSweepQueue(sq),
        pool.end(),
        apiPool.end(),
        readinessPool.end(),
      ]);
      redis.disconnect();
    },
  };
}
