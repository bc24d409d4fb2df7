import type { Config } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { createLogger } from '../log.ts';

export async function run(config: Config): Promise<number> {
  const logger = createLogger(config.LOG_LEVEL, 'migrate');
  const { applied, current } = await migrate(config.DATABASE_URL, logger);
  logger.info(
    { applied, current },
    applied.length ? 'database migrated' : 'database already up to date',
  );
  return 0;
}
