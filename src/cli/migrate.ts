import type { Config } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { createLogger } from '../log.ts';

export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'migrate');
  const { applied, current, layout } = await migrate(config.DATABASE_URL, logger, {
    layout: config.AUDIT_LOG_LAYOUT,
    timePartitionSpanMs: config.TIME_PARTITION_SPAN,
  });
  logger.info(
    { applied, current, layout },
    applied.length ? 'database migrated' : 'database already up to date',
  );
  return 0;
}
