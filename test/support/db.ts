import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type LayoutOptions, migrate } from '../../src/db/migrate.ts';
import { createPool, type Pool } from '../../src/db/pool.ts';
import { silentLogger } from '../../src/log.ts';

/** The shared server the tests create their own databases on. */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';

export type TestDatabase = { url: string; name: string; pool: Pool; drop: () => Promise<void> };

/**
 * The layout every test database gets unless a test asks for one: TEST_AUDIT_LOG_LAYOUT=partitioned
 * runs the whole suite against a time-partitioned audit_log.
 */
const DEFAULT_LAYOUT: LayoutOptions =
  process.env.TEST_AUDIT_LOG_LAYOUT === 'partitioned' ? partitionedLayout() : {};

/**
 * Daily time partitions from 40 days back: the seeds write rows up to 31 days old, which a new
 * production database (partitions from today) would hold in its default partition instead.
 */
export function partitionedLayout(): LayoutOptions {
  return {
    layout: 'partitioned',
    firstPartitionFrom: new Date(Date.now() - 40 * 86_400_000).toISOString(),
  };
}

/**
 * A fresh, migrated database for one test file, so files run in parallel and never touch a
 * developer's data. `drop` removes it (and ends whatever connections are left on it).
 */
export async function createTestDatabase(
  label: string,
  layout: LayoutOptions = DEFAULT_LAYOUT,
): Promise<TestDatabase> {
  const name = `test_${label.replace(/\W/g, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  await migrate(url.toString(), silentLogger, layout);
  const pool = createPool(url.toString(), silentLogger, { max: 20 });
  return {
    url: url.toString(),
    name,
    pool,
    drop: async () => {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

export async function adminQuery(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
