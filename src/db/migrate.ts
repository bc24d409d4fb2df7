import { readdir, readFile } from 'node:fs/promises';
import pg from 'pg';
import type { Logger } from '../log.ts';
import * as sql from '../sql/migrations.ts';
import { nameConnectionError } from './pool.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

export type Migration = { version: number; name: string; sql: string };
export type MigrateResult = { applied: string[]; current: number };

/** The numbered .sql files beside this module, in order: 001_name.sql, 002_name.sql, ... */
export async function loadMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number.parseInt(file, 10),
      name: file.replace(/\.sql$/, ''),
      sql: await readFile(new URL(file, MIGRATIONS_DIR), 'utf8'),
    })),
  );
}

/**
 * Applies every pending migration, each in its own transaction. Pods may all run this at the
 * same moment: a session advisory lock lets one apply while the others wait, then find nothing
 * left to do. A database that does not exist yet is created first.
 */
export async function migrate(databaseUrl: string, logger: Logger): Promise<MigrateResult> {
  await createDatabaseIfMissing(databaseUrl, logger);
  const client = new pg.Client({
    connectionString: databaseUrl,
    application_name: 'audit-sweeper migrate',
  });
  await client.connect().catch((err: unknown) => {
    throw nameConnectionError(err, databaseUrl);
  });
  try {
    await sql.lockMigrations(client);
    await sql.createMigrationsTable(client);
    const done = await sql.appliedMigrations(client);
    const applied: string[] = [];
    let current = Math.max(0, ...done);
    for (const migration of await loadMigrations()) {
      if (done.has(migration.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await sql.recordMigration(client, migration);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${migration.name} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      logger.info({ migration: migration.name }, 'migration applied');
      applied.push(migration.name);
      current = migration.version;
    }
    return { applied, current };
  } finally {
    await sql.unlockMigrations(client).catch(() => {});
    await client.end();
  }
}

async function createDatabaseIfMissing(databaseUrl: string, logger: Logger): Promise<void> {
  const probe = new pg.Client({ connectionString: databaseUrl });
  try {
    await probe.connect();
    return;
  } catch (err) {
    // 3D000: database does not exist
    if ((err as { code?: string }).code !== '3D000') throw nameConnectionError(err, databaseUrl);
  } finally {
    await probe.end().catch(() => {});
  }
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect().catch((err: unknown) => {
    throw nameConnectionError(err, databaseUrl);
  });
  try {
    await sql.createDatabase(admin, name);
    logger.info({ database: name }, 'database created');
  } catch (err) {
    // Another pod created it: 42P04 if it had committed before we looked, 23505 (on
    // pg_database's name index) if both CREATE DATABASE statements ran at the same moment.
    const code = (err as { code?: string }).code;
    if (code !== '42P04' && code !== '23505') throw err;
  } finally {
    await admin.end();
  }
}
