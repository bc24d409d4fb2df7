import type { Config } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { createLogger } from '../log.ts';
import { startDashboardService } from './dashboard.ts';
import { runUntilSignal } from './lifecycle.ts';
import { shutdownTimeoutMs, startWorkerService } from './worker.ts';

/**
 * `audit-sweeper start` (what `npm start` runs): migrate, then a sweep worker and the dashboard
 * in one process, for one machine. In production run `migrate`, `worker` and `dashboard` apart.
 */
export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'start');
  let dashboard: Awaited<ReturnType<typeof startDashboardService>> | undefined;
  let worker: Awaited<ReturnType<typeof startWorkerService>> | undefined;
  // Listening for signals from the start: the worker may wait a long time for Redis.
  const stopped = runUntilSignal(
    logger,
    async () => {
      await dashboard?.close();
      if (worker) await worker.close();
      // Not started yet (waiting for Redis): it holds no job and no lock, nothing to hand over.
      else setImmediate(() => process.exit(0));
    },
    shutdownTimeoutMs(config),
  );
  await migrate(config.DATABASE_URL, logger, {
    layout: config.AUDIT_LOG_LAYOUT,
    timePartitionSpanMs: config.TIME_PARTITION_SPAN,
  });
  // The dashboard first: it starts without Redis, while the worker waits for it (and keeps
  // trying), so an operator can look at the page during a Redis outage at boot. The worker
  // counts into the dashboard's metrics, so /metrics on either port shows them.
  dashboard = await startDashboardService(config, logger);
  const failed = startWorkerService(config, logger, { metrics: dashboard.metrics }).then(
    (w) => {
      worker = w;
      // Running until a signal; `stopped` decides.
      return new Promise<never>(() => {});
    },
    // A worker that cannot start (a port in use, say) ends the process.
    async (err) => {
      await dashboard?.close();
      throw err;
    },
  );
  return Promise.race([stopped, failed]);
}
