import type { AddressInfo } from 'node:net';
import { createDashboardApp, createDashboardPools } from '../../dashboard/app.ts';
import { resolveCredentials } from '../../dashboard/auth.ts';
import type { Config } from '../config.ts';
import { readPause } from '../control/pause.ts';
import { errorMessage } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { createRedis, refuseWrongRedisTopology } from '../queue/connection.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';
import { closeServer, listen, runUntilSignal } from './lifecycle.ts';

/**
 * `audit-sweeper dashboard`: the operator dashboard, Bull Board, the audit-log API and the
 * probes on DASHBOARD_PORT. Stateless: run as many as you like behind a load balancer (give
 * them one DASHBOARD_PASSWORD, or each generates its own).
 */
export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'dashboard');
  const dashboard = await startDashboardService(config, logger);
  return runUntilSignal(logger, dashboard.close);
}

/**
 * The dashboard's server and its connections; `close` shuts them down. `metrics` lets a process
 * that also sweeps (`start`) serve its worker's counters here.
 */
export async function startDashboardService(
  config: Config,
  logger: Logger,
  options: { metrics?: Metrics } = {},
) {
  const credentials = resolveCredentials(config, logger);
  // A REDIS_URL of the wrong topology is a bad setting (exit 2). A Redis that does not answer is
  // an outage: the dashboard starts anyway (its probes, the audit-log API and what PostgreSQL can
  // tell work without it) and the connection keeps trying in the background.
  await refuseWrongRedisTopology(config, logger);
  const redis = createRedis(config, 'producer', logger);
  redis
    .connect()
    .catch((err) =>
      logger.warn(
        { err: errorMessage(err) },
        'Redis unreachable at start (check REDIS_URL); serving without it and reconnecting',
      ),
    );
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  const { pool, apiPool } = createDashboardPools(config, logger);
  const metrics =
    options.metrics ??
    createMetrics({
      pool,
      staleAfterMs: config.STALE_AFTER,
      logger,
      paused: async () => (await readPause(redis, sq)) !== null,
    });
  const app = createDashboardApp({
    config,
    pool,
    apiPool,
    redis,
    sq,
    metrics,
    credentials,
    logger,
  });
  const server = await listen(app, config.DASHBOARD_PORT);
  logger.info(
    { port: (server.address() as AddressInfo).port, basePath: config.DASHBOARD_BASE_PATH || '/' },
    'dashboard listening',
  );
  return {
    metrics,
    close: async () => {
      await closeServer(server);
      await Promise.allSettled([closeSweepQueue(sq), pool.end(), apiPool.end()]);
      redis.disconnect();
    },
  };
}
