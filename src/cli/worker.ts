import express from 'express';
import { startSweepWorker } from '../../workers/sweep-worker.ts';
import type { Config } from '../config.ts';
import { probesRouter } from '../http/probes.ts';
import { createLogger } from '../log.ts';
import { closeServer, listen, runUntilSignal } from './lifecycle.ts';

/** `audit-sweeper worker`: one sweep worker, with /healthz, /readyz and /metrics for its pod. */
export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'worker');
  const sweeper = await startSweepWorker(config, logger);
  const app = express().disable('x-powered-by').use(probesRouter(sweeper));
  const server = await listen(app, config.WORKER_METRICS_PORT);
  logger.info({ port: config.WORKER_METRICS_PORT }, 'probes and metrics listening');
  return runUntilSignal(logger, async () => {
    await sweeper.close();
    await closeServer(server);
  });
}
