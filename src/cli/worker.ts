import type { AddressInfo } from 'node:net';
import express from 'express';
import { createSweepWorker } from '../../workers/sweep-worker.ts';
import type { Config } from '../config.ts';
import { probeErrorHandler, probesRouter } from '../http/probes.ts';
import { createLogger, type Logger } from '../log.ts';
import { closeServer, listen, runUntilSignal, waitForSignal } from './lifecycle.ts';

/**
 * `audit-sweeper worker`: one sweep worker, with /healthz, /readyz and /metrics for its pod.
 * The probes listen before Redis has to answer (a worker started during an outage is alive, not
 * ready), and a signal at any moment, start-up included, shuts down cleanly.
 */
export async function run(config: Config): Promise<number> {
  const signal = waitForSignal();
  const logger = createLogger(config.LOG_LEVEL, 'worker');
  const worker = await startWorkerService(config, logger, { waitUntilReady: false });
  return runUntilSignal(logger, worker.close, shutdownTimeoutMs(config), signal);
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
  options: { waitUntilReady?: boolean } = {},
) {
  const sweeper = createSweepWorker(config, logger);
  const app = express()
    .disable('x-powered-by')
    .use(probesRouter({ ...sweeper, logger }))
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
    close: async () => {
      await sweeper.close();
      await closeServer(server);
    },
  };
}
