import type { AddressInfo } from 'node:net';
import express from 'express';
import { createSweepWorker } from '../../workers/sweep-worker.ts';
import type { Config } from '../config.ts';
import { probeErrorHandler, probesRouter, readinessCheck } from '../http/probes.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { refuseWrongRedisTopology } from '../queue/connection.ts';
import { RedisSetupError } from '../redis-client.ts';
import { closeServer, listen, runUntilSignal, waitForSignal } from './lifecycle.ts';

/**
 * `audit-sweeper worker`: one sweep worker, with /healthz, /readyz and /metrics for its pod.
 * The probes listen before Redis has to answer (a worker started during an outage is alive, not
 * ready), and a signal at any moment, start-up included, shuts down cleanly.
 */
export async function run(config: Config): Promise<number> {
  const signal = waitForSignal();
  const logger = createLogger(config.LOG_LEVEL, 'worker');
  await refuseWrongRedisTopology(config, logger);
  const worker = await startWorkerService(config, logger, { waitUntilReady: false });
  // A REDIS_URL whose scheme does not fit what answers there fails the start-up: that is a bad
  // setting (main prints its one line and exits 2), not an outage to wait out.
  const badSetting = worker.ready.then(
    () => new Promise<never>(() => {}),
    (err) => {
      if (err instanceof RedisSetupError) return err;
      return new Promise<never>(() => {});
    },
  );
  const stopped = runUntilSignal(logger, worker.close, shutdownTimeoutMs(config), signal);
  const outcome = await Promise.race([stopped, badSetting]);
  if (typeof outcome === 'number') return outcome;
  await worker.close().catch(() => {});
  throw outcome;
}

/**
 * How long a worker's shutdown may take: the chunk under way commits within a lock TTL (a
 * chunk that takes longer has lost its lock anyway), plus time to release and disconnect.
 */
export const shutdownTimeoutMs = (config: Config) => 2 * config.SWEEP_LOCK_TTL + 10_000;

/**
 * A sweep worker and its probe server; `close` shuts both down gracefully. The probes listen
 * first; with `waitUntilReady` (the default) this resolves once the worker is connected.
 */
export async function startWorkerService(
  config: Config,
  logger: Logger,
  options: { waitUntilReady?: boolean; metrics?: Metrics } = {},
) {
  const sweeper = createSweepWorker(config, logger, { metrics: options.metrics });
  const app = express()
    .disable('x-powered-by')
    .use(
      probesRouter({
        readiness: readinessCheck({ pool: sweeper.readinessPool, redis: sweeper.redis, logger }),
        metrics: sweeper.metrics,
        logger,
      }),
    )
    .use(probeErrorHandler(logger));
  const server = await listen(app, config.WORKER_METRICS_PORT);
  logger.info({ port: (server.address() as AddressInfo).port }, 'probes and metrics listening');
  if (options.waitUntilReady !== false) {
    try {
      await sweeper.ready;
    } catch (err) {
      await sweeper.close().catch(() => {});
      await closeServer(server);
      throw err;
    }
  }
  return {
    metrics: sweeper.metrics,
    ready: sweeper.ready,
    close: async () => {
      await sweeper.close();
      await closeServer(server);
    },
  };
}
