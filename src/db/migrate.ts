import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from '../log.ts';
import * as sql from '../sql/migrations.ts';
import { type AuditLogLayout, auditLogLayout } from '../sql/time-partitions.ts';
import { convertToTimePartitions } from '../time-partitions/convert.ts';
import { nameConnectionError } from './pool.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

export type Migration = {
  version: number;
  name: string;
  sql: string;
  /** False for a migration marked `-- migrate: no-transaction` (see NO_TRANSACTION). */
  transactional: boolean;
};

/**
 * A migration whose leading comments hold `-- migrate: no-transaction` runs outside a
 * transaction, as one statement: what `CREATE INDEX CONCURRENTLY` needs, which builds an index
 * without blocking the application's writes (a plain CREATE INDEX holds them for the whole
 * build, minutes on a large table). Such a migration should be safe to run again
 * (`IF NOT EXISTS`): it is recorded only after it has run.
 */
const NO_TRANSACTION = /^(?:\s*--[^\n]*\n)*?\s*--\s*migrate:\s*no-transaction\b/;

/** Index names a concurrent build in this SQL creates. */
const concurrentIndexes = (text: string) =>
  [
    ...text.matchAll(
      /CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"?(\w+)"?/gi,
    ),
  ].map((m) => m[1] as string);

const DEFAULT_SPAN_MS = 86_400_000;

/** While another process holds the migrations' lock, how often to ask for it again. */
const LOCK_RETRY_MS = 250;
export type MigrateResult = { applied: string[]; current: number; layout: AuditLogLayout };

/** How audit_log should be laid out (AUDIT_LOG_LAYOUT, TIME_PARTITION_SPAN); plain by default. */
export type LayoutOptions = {
  layout?: AuditLogLayout;
  timePartitionSpanMs?: number;
  /** A new database only: its first time partition starts here (bench and tests). */
  firstPartitionFrom?: string;
};

/** The numbered .sql files beside this module, in order: 001_name.sql, 002_name.sql, ... */
export async function loadMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number.parseInt(file, 10),
      name: file.replace(/\.sql$/, ''),
      ...(await readFile(new URL(file, MIGRATIONS_DIR), 'utf8').then((text) => ({
        sql: text,
        transactional: !NO_TRANSACTION.test(text),
      }))),
    })),
  );
}

/**
 * Applies every pending migration, each in its own transaction (or none: NO_TRANSACTION). Pods
 * may all run this at the same moment: a session advisory lock lets one apply while the others
 * wait, then find nothing left to do. They wait by asking again every LOCK_RETRY_MS, not inside
 * pg_advisory_lock: a session waiting in a statement holds a snapshot, which a concurrent index
 * build waits for, while the waiter waits for the builder's lock (a deadlock PostgreSQL breaks
 * by cancelling one of them). A database that does not exist yet is created first.
 */
export async function migrate(
  databaseUrl: string,
  logger: Logger,
  options: LayoutOptions = {},
): Promise<MigrateResult> {
  await createDatabaseIfMissing(databaseUrl, logger);
  const client = new pg.Client({
    connectionString: databaseUrl,
    application_name: 'audit-sweeper migrate',
  });
  await client.connect().catch((err: unknown) => {
    throw nameConnectionError(err, databaseUrl);
  });
  try {
    for (let waited = false; !(await sql.tryLockMigrations(client)); waited = true) {
      if (!waited) logger.info('another process is migrating this database: waiting for it');
      await sleep(LOCK_RETRY_MS);
    }
    await sql.createMigrationsTable(client);
    const done = await sql.appliedMigrations(client);
    const applied: string[] = [];
    let current = Math.max(0, ...done);
    for (const migration of await loadMigrations()) {
      if (done.has(migration.version)) continue;
      try {
        if (migration.transactional) await applyInTransaction(client, migration);
        else await applyOutsideTransaction(client, migration, logger);
      } catch (err) {
        throw new Error(`migration ${migration.name} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      logger.info({ migration: migration.name }, 'migration applied');
      applied.push(migration.name);
      current = migration.version;
    }
    return { applied, current, layout: await applyLayout(client, logger, options) };
  } finally {
    await sql.unlockMigrations(client).catch(() => {});
    await client.end();
  }
}

/**
 * Converts a plain audit_log to time partitions when asked; never back (that would copy the
 * whole log): a partitioned log asked to be plain stays partitioned, and says so.
 */
async function applyLayout(
  client: pg.Client,
  logger: Logger,
  o: LayoutOptions,
): Promise<AuditLogLayout> {
  const layout = (await auditLogLayout(client)) ?? 'plain';
  if (o.layout === 'partitioned' && layout === 'plain') {
    await convertToTimePartitions(client, {
      spanMs: o.timePartitionSpanMs ?? DEFAULT_SPAN_MS,
      logger,
      ...(o.firstPartitionFrom ? { firstPartitionFrom: o.firstPartitionFrom } : {}),
    });
    return 'partitioned';
  }
  if (o.layout === 'plain' && layout === 'partitioned')
    logger.warn(
      'AUDIT_LOG_LAYOUT=plain, but audit_log is already partitioned by time: it stays partitioned (a partitioned log is never converted back)',
    );
  return layout;
}

async function applyInTransaction(client: pg.Client, migration: Migration): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(migration.sql);
    await sql.recordMigration(client, migration);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/**
 * A concurrent index build that failed (cancelled, a lost connection, a deadlock) leaves its
 * index behind, INVALID: never used by queries, yet updated by every write, and `IF NOT EXISTS`
 * would keep it. So the indexes this migration builds that are INVALID are dropped first (also
 * without blocking writes), and built again.
 */
async function applyOutsideTransaction(
  client: pg.Client,
  migration: Migration,
  logger: Logger,
): Promise<void> {
  for (const index of await sql.invalidIndexes(client, concurrentIndexes(migration.sql))) {
    logger.warn(
      { migration: migration.name, index },
      'dropping an index left invalid by an earlier failed build, to build it again',
    );
    await sql.dropIndexConcurrently(client, index);
  }
  await client.query(migration.sql);
  await sql.recordMigration(client, migration);
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
