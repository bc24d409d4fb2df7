import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../src/db/migrate.ts';
import { silentLogger } from '../src/log.ts';
import { runCli } from './support/cli.ts';
import { ADMIN_URL, adminQuery } from './support/db.ts';

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
    expect(first).toEqual({ applied: names, current: last });

    const second = await migrate(url, silentLogger);
    expect(second).toEqual({ applied: [], current: last });

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

  it('a database that cannot be reached is an error, not a silent success', async () => {
    await expect(
      migrate('postgres://root@127.0.0.1:1/whatever', silentLogger),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
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
