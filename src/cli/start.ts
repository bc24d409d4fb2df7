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
  await migrate(config.DATABASE_URL, logger);
  const worker = await startWorkerService(config, logger);
  const dashboard = await startDashboardService(config, logger, { metrics: worker.metrics }).catch(
    async (err) => {
      await worker.close();
      throw err;
    },
  );
  return runUntilSignal(
    logger,
    async () => {
      await dashboard.close();
      await worker.close();
    },
    shutdownTimeoutMs(config),
  );
}
