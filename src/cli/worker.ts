import type { AddressInfo } from 'node:net';
import express from 'express';
import { startSweepWorker } from '../../workers/sweep-worker.ts';
import type { Config } from '../config.ts';
import { probesRouter } from '../http/probes.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { closeServer, listen, runUntilSignal } from './lifecycle.ts';

/** `audit-sweeper worker`: one sweep worker, with /healthz, /readyz and /metrics for its pod. */
export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'worker');
  const worker = await startWorkerService(config, logger);
  return runUntilSignal(logger, worker.close, shutdownTimeoutMs(config));
}

/**
 * How long a worker's shutdown may take: the chunk under way commits within a lock TTL (a
 * chunk that takes longer has lost its lock anyway), plus time to release and disconnect.
 */
export const shutdownTimeoutMs = (config: Config) => 2 * config.SWEEP_LOCK_TTL + 10_000;

/** A sweep worker and its probe server; `close` shuts both down gracefully. */
export async function startWorkerService(
  config: Config,
  logger: Logger,
  options: { metrics?: Metrics } = {},
) {
  const sweeper = await startSweepWorker(config, logger, options);
  const app = express().disable('x-powered-by').use(probesRouter(sweeper));
  const server = await listen(app, config.WORKER_METRICS_PORT);
  logger.info({ port: (server.address() as AddressInfo).port }, 'probes and metrics listening');
  return {
    metrics: sweeper.metrics,
    close: async () => {
      await sweeper.close();
      await closeServer(server);
    },
  };
}
