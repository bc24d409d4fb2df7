import type { Queryable } from './fragments.ts';

/** Serializes `migrate` across pods; the number is arbitrary but fixed. */
const MIGRATION_LOCK_KEY = 7_140_512_093;

/** Takes the migrations' lock if it is free; never waits in the database (see migrate.ts). */
export async function tryLockMigrations(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_lock($1) AS locked',
    [MIGRATION_LOCK_KEY],
  );
  return rows[0]?.locked === true;
}

export async function unlockMigrations(db: Queryable): Promise<void> {
  await db.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
}

export async function createMigrationsTable(db: Queryable): Promise<void> {
  await db.query(`
    CREATE TABLE IF NOT EXISTS audit_sweeper_migrations (
      version    int PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
}

export async function appliedMigrations(db: Queryable): Promise<Set<number>> {
  const { rows } = await db.query<{ version: number }>(
    'SELECT version FROM audit_sweeper_migrations ORDER BY version',
  );
  return new Set(rows.map((r) => r.version));
}

export async function recordMigration(
  db: Queryable,
  m: { version: number; name: string },
): Promise<void> {
  await db.query('INSERT INTO audit_sweeper_migrations (version, name) VALUES ($1, $2)', [
    m.version,
    m.name,
  ]);
}

/** CREATE DATABASE takes no parameters: the name is quoted as an identifier instead. */
export async function createDatabase(db: Queryable, name: string): Promise<void> {
  await db.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
}

/** Of these index names (in the search path), those left INVALID by a failed concurrent build. */
export async function invalidIndexes(db: Queryable, names: string[]): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE NOT i.indisvalid AND c.relname = ANY($1::text[]) AND pg_table_is_visible(c.oid)`,
    [names],
  );
  return rows.map((r) => r.name);
}

/** Drops an index without blocking writes to its table (outside any transaction). */
export async function dropIndexConcurrently(db: Queryable, name: string): Promise<void> {
  await db.query(`DROP INDEX CONCURRENTLY IF EXISTS "${name.replaceAll('"', '""')}"`);
}
