import type { Queryable } from './fragments.ts';

/** Serializes `migrate` across pods; the number is arbitrary but fixed. */
const MIGRATION_LOCK_KEY = 7_140_512_093;

export async function lockMigrations(db: Queryable): Promise<void> {
  await db.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
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
