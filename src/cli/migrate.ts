import { parseArgs } from 'node:util';
import type { Config } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { createLogger } from '../log.ts';

export async function run(config: Config, args: string[] = []): Promise<number> {
  // migrate takes no options: a stray one is a usage error (exit 2), not a silent migration.
  parseArgs({ args, options: {}, strict: true, allowPositionals: false });
  const logger = createLogger(config.LOG_LEVEL, 'migrate');
  const { applied, current } = await migrate(config.DATABASE_URL, logger);
  logger.info(
    { applied, current },
    applied.length ? 'database migrated' : 'database already up to date',
  );
  return 0;
}
