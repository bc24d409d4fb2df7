import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../src/db/migrate.ts';
import { silentLogger } from '../src/log.ts';
import { runCli } from './support/cli.ts';
import { ADMIN_URL, adminQuery } from './support/db.ts';
import { captureLogger } from './support/logs.ts';

/**
 * `migrate` against the real server: it creates a missing database, applies every migration
 * once, does nothing the second time, and is safe when several pods run it at the same moment.
 * Each test works on databases of its own, all dropped at the end.
 */

const created: string[] = [];

/** The URL of a database that does not exist yet (dropped after the file). */
function freshDatabase(label: string): { url: string; name: string } {
  const name = `test_migrate_${label}_${randomBytes(4).toString('hex')}`;
  created.push(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), name };
}

afterAll(async () => {
  for (const name of created) await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
});

async function query<T extends pg.QueryResultRow>(url: string, statement: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(statement)).rows;
  } finally {
    await client.end();
  }
}

const recorded = (url: string) =>
  query<{ version: number; name: string }>(
    url,
    'SELECT version, name FROM audit_sweeper_migrations ORDER BY version',
  );

async function databaseExists(name: string): Promise<boolean> {
  const rows = await query(ADMIN_URL, `SELECT 1 FROM pg_database WHERE datname = '${name}'`);
  return rows.length === 1;
}

describe('migrate', () => {
  it('finds the numbered migrations in order, starting with the audit log', async () => {
    const migrations = await loadMigrations();
    expect(migrations.length).toBeGreaterThanOrEqual(3);
    expect(migrations[0]).toMatchObject({ version: 1, name: '001_audit_log' });
    const versions = migrations.map((m) => m.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(versions.length);
  });

  it('creates a missing database, applies everything, and applies nothing the second time', async () => {
    const { url, name } = freshDatabase('twice');
    expect(await databaseExists(name)).toBe(false);
    const names = (await loadMigrations()).map((m) => m.name);
    const last = (await loadMigrations()).at(-1)?.version;

    const first = await migrate(url, silentLogger);
    expect(await databaseExists(name)).toBe(true);
    expect(first).toEqual({ applied: names, current: last, layout: 'plain' });

    const second = await migrate(url, silentLogger);
    expect(second).toEqual({ applied: [], current: last, layout: 'plain' });

    expect((await recorded(url)).map((r) => r.name)).toEqual(names);
    const tables = await query<{ tablename: string }>(
      url,
      `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`,
    );
    expect(tables.map((t) => t.tablename)).toEqual(
      expect.arrayContaining(['audit_log', 'audit_sweeper_migrations', 'audit_sweeper_secret']),
    );
  });

  it('applies only what is pending', async () => {
    const { url } = freshDatabase('pending');
    await migrate(url, silentLogger);
    // Undo migration 3 by hand, as if the database had been migrated by an older release.
    await query(url, 'DELETE FROM audit_sweeper_migrations WHERE version = 3');
    await query(url, 'DROP TABLE audit_sweeper_secret');
    const again = await migrate(url, silentLogger);
    expect(again.applied).toEqual(['003_page_token_key']);
    expect(await recorded(url)).toHaveLength((await loadMigrations()).length);
    const secret = await query<{ value: string }>(url, 'SELECT value FROM audit_sweeper_secret');
    expect(secret).toHaveLength(1);
    expect(secret[0]?.value).toMatch(/^[0-9a-f]{64}$/);
  });

  it('4 concurrent runs on a fresh, empty database all succeed and apply each migration once', async () => {
    const { url, name } = freshDatabase('concurrent');
    await adminQuery(`CREATE DATABASE "${name}"`);
    const names = (await loadMigrations()).map((m) => m.name);
    const results = await Promise.all([1, 2, 3, 4].map(() => migrate(url, silentLogger)));
    // Together they applied each migration exactly once.
    expect(results.flatMap((r) => r.applied).sort()).toEqual(names);
    for (const r of results) expect(r.current).toBe((await loadMigrations()).at(-1)?.version);
    const versions = (await recorded(url)).map((r) => r.version);
    expect(versions).toEqual([...new Set(versions)]);
    expect(versions).toHaveLength(names.length);
  });

  it('4 concurrent runs on a missing database all succeed (one creates it)', async () => {
    const { url } = freshDatabase('concurrent_missing');
    const names = (await loadMigrations()).map((m) => m.name);
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => migrate(url, silentLogger)));
    expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
    ]);
    const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value.applied : []));
    expect(applied.sort()).toEqual(names);
    expect(await recorded(url)).toHaveLength(names.length);
  });

  it('4 concurrent runs that build an index concurrently all succeed (none deadlocks the build)', async () => {
    const { url } = freshDatabase('concurrent_index');
    await migrate(url, silentLogger);
    await seed(url, 20_000);
    await unapplyIndexMigration(url);
    const results = await Promise.all([1, 2, 3, 4].map(() => migrate(url, silentLogger)));
    expect(results.flatMap((r) => r.applied)).toEqual([INDEX_MIGRATION]);
    expect(await indexState(url)).toBe('valid');
  });

  it('a database that cannot be reached is an error, not a silent success', async () => {
    await expect(
      migrate('postgres://root@127.0.0.1:1/whatever', silentLogger),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

/** Migration 002 builds its index CONCURRENTLY, outside a transaction. */
const INDEX_MIGRATION = '002_partition_sweep_index';
const INDEX = 'audit_log_incomplete_by_id';

/** As if the database had been migrated by a release before 002: its index not built yet. */
async function unapplyIndexMigration(url: string) {
  await query(url, `DROP INDEX ${INDEX}`);
  await query(url, 'DELETE FROM audit_sweeper_migrations WHERE version = 2');
}

/** Completed and incomplete rows, as an application's table holds them. */
async function seed(url: string, rows: number) {
  await query(
    url,
    `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
                            actor_kind, time_completed, http_status_code, result_kind)
     SELECT gen_random_uuid(), now() - make_interval(secs => g), 'seed-' || g, '/v1/x', 'op',
            '10.0.0.1', 'unauthenticated',
            CASE WHEN g % 10 <> 0 THEN now() END, CASE WHEN g % 10 <> 0 THEN 200 END,
            CASE WHEN g % 10 <> 0 THEN 'success'::audit_log_result_kind END
       FROM generate_series(1, ${rows}) AS g`,
  );
}

const insertOne = (client: pg.Client, tag: string) =>
  client.query(
    `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
                            actor_kind)
     VALUES (gen_random_uuid(), now(), $1, '/v1/x', 'op', '10.0.0.1', 'unauthenticated')`,
    [tag],
  );

async function indexState(url: string): Promise<'missing' | 'valid' | 'invalid'> {
  const rows = await query<{ valid: boolean }>(
    url,
    `SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE c.relname = '${INDEX}'`,
  );
  if (rows.length === 0) return 'missing';
  return rows[0]?.valid ? 'valid' : 'invalid';
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/** The migrate session's pid, once it is waiting for a lock (its index build, here). */
async function migrateWaitingForLock(url: string): Promise<number> {
  let pid = 0;
  await expect
    .poll(
      async () => {
        const rows = await query<{ pid: number }>(
          url,
          `SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'audit-sweeper migrate'
              AND wait_event_type = 'Lock'`,
        );
        pid = rows[0]?.pid ?? 0;
        return pid;
      },
      { timeout: 30_000 },
    )
    .toBeGreaterThan(0);
  return pid;
}

/** Resolves 'done' once the statement finished, 'blocked' as soon as its session waits for a lock. */
async function doneOrBlocked(url: string, client: pg.Client, statement: Promise<unknown>) {
  const pid = (client as unknown as { processID: number }).processID;
  let settled = false;
  statement.then(
    () => {
      settled = true;
    },
    () => {},
  );
  for (;;) {
    if (settled) return 'done';
    const rows = await query<{ waiting: boolean }>(
      url,
      `SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = ${pid}`,
    );
    if (rows[0]?.waiting) return 'blocked';
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('an index migration (CREATE INDEX CONCURRENTLY, outside a transaction)', () => {
  it('002 is marked to run outside a transaction; the others are not', async () => {
    const migrations = await loadMigrations();
    expect(migrations.find((m) => m.name === INDEX_MIGRATION)?.transactional).toBe(false);
    expect(migrations.filter((m) => !m.transactional).map((m) => m.name)).toEqual([
      INDEX_MIGRATION,
    ]);
  });

  it("lets the application's INSERTs go on while it builds on a seeded table", async () => {
    const { url } = freshDatabase('index_writes');
    await migrate(url, silentLogger);
    await seed(url, 100_000);
    await unapplyIndexMigration(url);
    // An application transaction under way: the build must wait for it, whatever its kind.
    const writer = await connect(url);
    const other = await connect(url);
    try {
      await writer.query('BEGIN');
      await insertOne(writer, 'in a transaction');
      const migrating = migrate(url, silentLogger);
      migrating.catch(() => {});
      await migrateWaitingForLock(url);
      // While the build waits, another INSERT goes through. A plain CREATE INDEX would be
      // queued for its lock, and this INSERT behind it, until the transaction above ends.
      expect(await doneOrBlocked(url, other, insertOne(other, 'during the build'))).toBe('done');
      expect(await indexState(url)).not.toBe('valid');
      await writer.query('COMMIT');
      expect((await migrating).applied).toEqual([INDEX_MIGRATION]);
      expect(await indexState(url)).toBe('valid');
      const rows = await query<{ n: number }>(
        url,
        `SELECT count(*)::int AS n FROM audit_log WHERE request_id IN ('in a transaction', 'during the build')`,
      );
      expect(rows[0]?.n).toBe(2);
    } finally {
      await writer.end();
      await other.end();
    }
  });

  it('a build that failed leaves an INVALID index; the next run drops it and builds it again', async () => {
    const { url } = freshDatabase('index_failed');
    await migrate(url, silentLogger);
    await seed(url, 20_000);
    await unapplyIndexMigration(url);
    const writer = await connect(url);
    try {
      await writer.query('BEGIN');
      await insertOne(writer, 'holds the build');
      const migrating = migrate(url, silentLogger);
      const pid = await migrateWaitingForLock(url);
      // Cancelled mid-build, as an operator's pg_cancel_backend or a lost connection would.
      await query(url, `SELECT pg_cancel_backend(${pid})`);
      await expect(migrating).rejects.toThrow(/002_partition_sweep_index failed: .*cancel/);
      await writer.query('COMMIT');
      expect(await indexState(url)).toBe('invalid');
      expect((await recorded(url)).map((r) => r.version)).not.toContain(2);

      const { logger, records } = captureLogger();
      const again = await migrate(url, logger);
      expect(again.applied).toEqual([INDEX_MIGRATION]);
      expect(await indexState(url)).toBe('valid');
      expect(records()).toContainEqual(
        expect.objectContaining({
          index: INDEX,
          msg: 'dropping an index left invalid by an earlier failed build, to build it again',
        }),
      );
      expect((await recorded(url)).map((r) => r.version)).toContain(2);
    } finally {
      await writer.end();
    }
  });

  it('a run that built the index but did not record it finds it there and records it', async () => {
    const { url } = freshDatabase('index_unrecorded');
    await migrate(url, silentLogger);
    await query(url, 'DELETE FROM audit_sweeper_migrations WHERE version = 2');
    expect((await migrate(url, silentLogger)).applied).toEqual([INDEX_MIGRATION]);
    expect(await indexState(url)).toBe('valid');
  });
});

describe('audit-sweeper migrate (CLI)', () => {
  it('run twice on an empty database succeeds both times; the second applies nothing', async () => {
    const { url, name } = freshDatabase('cli');
    const first = await runCli(['migrate'], { DATABASE_URL: url });
    expect(first.code, first.output).toBe(0);
    expect(first.output).toContain('database migrated');
    expect(first.output).toContain('001_audit_log');
    expect(await databaseExists(name)).toBe(true);

    const second = await runCli(['migrate'], { DATABASE_URL: url });
    expect(second.code, second.output).toBe(0);
    expect(second.output).toContain('database already up to date');
    expect(second.output).not.toContain('migration applied');
    expect(await recorded(url)).toHaveLength((await loadMigrations()).length);
  });

  it('exits 1 with the reason when the database cannot be reached', async () => {
    const { code, output } = await runCli(['migrate'], {
      DATABASE_URL: 'postgres://root@127.0.0.1:1/whatever',
    });
    expect(code).toBe(1);
    expect(output).toMatch(/ECONNREFUSED/);
  });

  it('rejects an unknown option with exit code 2 and does nothing', async () => {
    const { url, name } = freshDatabase('cli_bogus');
    const { code, output } = await runCli(['migrate', '--dry-run'], { DATABASE_URL: url });
    expect(code).toBe(2);
    expect(output).toContain('--dry-run');
    expect(await databaseExists(name)).toBe(false);
  });
});
