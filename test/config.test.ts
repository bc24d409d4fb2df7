import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import { formatDuration, parseDuration } from '../src/duration.ts';
import { runCli } from './support/cli.ts';
import { ADMIN_URL, adminQuery } from './support/db.ts';

/** Settings (read and validated once, a bad one is exit code 2) and the CLI around them. */

const ROOT = fileURLToPath(new URL('../', import.meta.url));

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      DATABASE_URL: 'postgres://root@127.0.0.1:5432/audit_sweeper',
      REDIS_URL: 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: '{audit}',
      STALE_AFTER: 4 * 3_600_000,
      SWEEP_EVERY: 60_000,
      SWEEP_PARTITIONS: 16,
      SWEEP_CHUNK_SIZE: 5000,
      RETENTION: 90 * 86_400_000,
      DASHBOARD_PORT: 3000,
      DASHBOARD_USER: 'admin',
      LOG_LEVEL: 'info',
      SWEEP_MAX_ROWS_PER_SECOND: null,
      SWEEP_MAX_REPLICA_LAG: 10_000,
      SWEEP_MAX_ACTIVE_BACKENDS: null,
      SWEEP_MAX_STREAMS: 2,
      SWEEP_IMPACT_TARGET: { multiple: 3 },
      SWEEP_LOCK_TIMEOUT: 5_000,
      SWEEP_STATEMENT_TIMEOUT: 60_000,
      DASHBOARD_READER_USER: 'reader',
      DASHBOARD_TRUSTED_PROXIES: 0,
    });
    expect(config.DASHBOARD_PASSWORD).toBeUndefined();
    // No reader login unless its password is set; no public origin unless given.
    expect(config.DASHBOARD_READER_PASSWORD).toBeUndefined();
    expect(config.DASHBOARD_PUBLIC_URL).toBeUndefined();
    expect(
      loadConfig({ DASHBOARD_PUBLIC_URL: 'https://Ops.Example.com:8443/audit/' }),
    ).toMatchObject({ DASHBOARD_PUBLIC_URL: 'https://ops.example.com:8443' });
    expect(
      loadConfig({
        SWEEP_MAX_ROWS_PER_SECOND: '500',
        SWEEP_MAX_REPLICA_LAG: 'off',
        SWEEP_MAX_ACTIVE_BACKENDS: '8',
        SWEEP_MAX_STREAMS: 'off',
        SWEEP_IMPACT_TARGET: '10ms',
      }),
    ).toMatchObject({
      SWEEP_MAX_STREAMS: null,
      SWEEP_IMPACT_TARGET: { ms: 10 },
      SWEEP_MAX_ROWS_PER_SECOND: 500,
      SWEEP_MAX_REPLICA_LAG: null,
      SWEEP_MAX_ACTIVE_BACKENDS: 8,
    });
  });

  it('an empty value means the default', () => {
    expect(loadConfig({ SWEEP_EVERY: '', RETENTION: '' })).toMatchObject({
      SWEEP_EVERY: 60_000,
      RETENTION: 90 * 86_400_000,
    });
  });

  it('takes each duration at its upper bound', () => {
    expect(
      loadConfig({
        SWEEP_EVERY: '24d',
        SWEEP_LOCK_TTL: '12d',
        SWEEP_TIME_BUDGET: '24d',
        STALE_AFTER: '36500d',
        LIST_SAFETY_MARGIN: '36500d',
        RETENTION: '36500d',
        API_MAX_WAIT: '60s',
        API_STATEMENT_TIMEOUT: '1h',
      }),
    ).toMatchObject({
      SWEEP_EVERY: 24 * 86_400_000,
      SWEEP_LOCK_TTL: 12 * 86_400_000,
      STALE_AFTER: 36_500 * 86_400_000,
      RETENTION: 36_500 * 86_400_000,
    });
  });

  it('reads given values', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://u:p@db.internal:6432/audit',
      REDIS_URL: 'rediss://cache:6380/2',
      QUEUE_PREFIX: '{ops}',
      STALE_AFTER: '15m',
      SWEEP_EVERY: '30s',
      SWEEP_PARTITIONS: '1024',
      SWEEP_CHUNK_SIZE: '1',
      RETENTION: 'off',
      DASHBOARD_PORT: '8080',
      DASHBOARD_USER: 'ops',
      DASHBOARD_PASSWORD: 'correct horse',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      DATABASE_URL: 'postgresql://u:p@db.internal:6432/audit',
      REDIS_URL: 'rediss://cache:6380/2',
      QUEUE_PREFIX: '{ops}',
      STALE_AFTER: 900_000,
      SWEEP_EVERY: 30_000,
      SWEEP_PARTITIONS: 1024,
      SWEEP_CHUNK_SIZE: 1,
      RETENTION: null,
      DASHBOARD_PORT: 8080,
      DASHBOARD_USER: 'ops',
      DASHBOARD_PASSWORD: 'correct horse',
      LOG_LEVEL: 'debug',
    });
  });

  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['15m', 900_000],
    ['4h', 14_400_000],
    ['90d', 7_776_000_000],
  ])('reads the duration %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(loadConfig({ STALE_AFTER: text }).STALE_AFTER).toBe(ms);
  });

  it('formats durations back to text that parses to the same value', () => {
    expect(formatDuration(14_400_000)).toBe('4h');
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(1500)).toBe('1500ms');
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 ** 12 }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
    );
  });

  const bad: [string, string][] = [
    ['SWEEP_EVERY', 'banana'],
    ['SWEEP_EVERY', '500ms'], // below the 1 s minimum
    ['SWEEP_EVERY', '60'],
    ['STALE_AFTER', '4 hours'],
    ['STALE_AFTER', '1.5h'],
    ['STALE_AFTER', '-1h'],
    ['STALE_AFTER', '0s'],
    ['STALE_AFTER', '4H'],
    ['SWEEP_PARTITIONS', '0'],
    ['SWEEP_PARTITIONS', '1025'],
    ['SWEEP_PARTITIONS', '2.5'],
    ['SWEEP_PARTITIONS', 'many'],
    ['SWEEP_PARTITIONS', ' '],
    ['SWEEP_CHUNK_SIZE', '0'],
    ['SWEEP_CHUNK_SIZE', '50001'],
    ['DATABASE_URL', 'nope'],
    ['DATABASE_URL', 'mysql://root@127.0.0.1/db'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['QUEUE_PREFIX', 'audit:queue'],
    ['QUEUE_PREFIX', 'has space'],
    ['LIST_SAFETY_MARGIN', '1s'], // below the 2 s floor (the sweeper's commits are asynchronous)
    ['RETENTION', 'forever'],
    ['RETENTION', 'OFF'],
    // Below the one-day floor: `90m` is the typo for `90d` that would delete the log.
    ['RETENTION', '90m'],
    ['RETENTION', '23h'],
    ['DASHBOARD_PORT', '65536'],
    ['DASHBOARD_PORT', '-1'],
    ['DASHBOARD_USER', 'a:b'],
    ['DASHBOARD_PASSWORD', 'short'],
    ['LOG_LEVEL', 'verbose'],
    // Above what the code can honour: Node timers hold at most 2^31-1 ms (about 24.8 days),
    // PostgreSQL timestamps end in 4713 BC.
    ['SWEEP_EVERY', '25d'],
    ['SWEEP_LOCK_TTL', '13d'],
    ['SWEEP_TIME_BUDGET', '25d'],
    ['STALE_AFTER', '300000000d'],
    ['LIST_SAFETY_MARGIN', '300000000d'],
    ['RETENTION', '300000000d'],
    ['STALE_AFTER', `${'9'.repeat(400)}ms`], // Infinity once read as a number
    ['DATABASE_READ_URL', 'mysql://root@127.0.0.1/db'],
    ['API_POOL_SIZE', '0'],
    ['API_MAX_QUEUED', '10001'],
    ['API_MAX_WAIT', '2m'],
    ['API_STATEMENT_TIMEOUT', '50ms'],
    ['API_STATEMENT_TIMEOUT', '2h'],
    ['SWEEP_MAX_ROWS_PER_SECOND', '0'],
    ['SWEEP_MAX_ROWS_PER_SECOND', 'fast'],
    ['SWEEP_MAX_REPLICA_LAG', '10'],
    ['SWEEP_MAX_REPLICA_LAG', 'none'],
    ['SWEEP_MAX_ACTIVE_BACKENDS', '-3'],
    ['SWEEP_MAX_ACTIVE_BACKENDS', 'busy'],
    ['SWEEP_LOCK_TIMEOUT', '50ms'],
    ['SWEEP_LOCK_TIMEOUT', '2h'],
    ['SWEEP_STATEMENT_TIMEOUT', '500ms'],
    ['SWEEP_STATEMENT_TIMEOUT', '2h'],
    // The placeholders shipped in deploy/kubernetes/secret.yaml and the like.
    ['DASHBOARD_PASSWORD', 'REPLACE-ME-with-a-long-random-password'],
    ['DASHBOARD_PASSWORD', 'changeme-please'],
    ['DASHBOARD_READER_PASSWORD', 'short'],
    ['DASHBOARD_READER_PASSWORD', 'REPLACE-ME-too'],
    ['DASHBOARD_READER_USER', 'admin'], // the operator's user name (DASHBOARD_USER's default)
    ['DASHBOARD_READER_USER', 'a b'],
    ['DASHBOARD_PUBLIC_URL', 'ops.example.com'],
    ['DASHBOARD_PUBLIC_URL', 'ftp://ops.example.com'],
    ['DASHBOARD_TRUSTED_PROXIES', '11'],
    ['DASHBOARD_TRUSTED_PROXIES', 'yes'],
  ];

  it.each(bad)(
    '%s=%j is a ConfigError naming the variable, the value (unless secret) and what is accepted',
    (variable, value) => {
      let error: unknown;
      try {
        loadConfig({ [variable]: value });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const e = error as ConfigError;
      expect(e.variable).toBe(variable);
      expect(e.accepted.length).toBeGreaterThan(5);
      expect(e.message).toContain(variable);
      // A secret is never echoed; everything else is, to show what was wrong.
      // A secret is never echoed, nor a connection URL (it may hold a password); the rest is.
      if (variable.endsWith('_PASSWORD') || /(DATABASE|REDIS)(_READ)?_URL$/.test(variable))
        expect(e.message).not.toContain(value);
      else expect(e.message).toContain(JSON.stringify(value));
      expect(e.message).toContain(e.accepted);
      expect(e.message).not.toContain('\n');
    },
  );
});

describe('audit-sweeper CLI (from the sources)', () => {
  /** One line naming the variable and the value (a connection URL's scheme only); exit code 2. */
  async function expectBadSetting(variable: string, value: string) {
    const { code, output } = await runCli(['migrate'], { [variable]: value });
    expect(code, output).toBe(2);
    const lines = output.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(variable);
    if (variable.endsWith('_URL')) expect(lines[0]).not.toContain(value);
    else expect(lines[0]).toContain(value);
    expect(lines[0]).toMatch(/expected/);
  }

  it('SWEEP_EVERY=banana exits 2 with one line naming SWEEP_EVERY, and touches no database', async () => {
    const name = `test_config_untouched_${randomBytes(4).toString('hex')}`;
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    const { code, output } = await runCli(['migrate'], {
      SWEEP_EVERY: 'banana',
      DATABASE_URL: url.toString(),
    });
    expect(code).toBe(2);
    expect(output.trim().split('\n')).toEqual([
      'invalid setting SWEEP_EVERY="banana": expected a duration like 500ms, 30s, 15m, 4h or 90d, from 1s to 24d',
    ]);
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [
        name,
      ]);
      expect(rowCount).toBe(0);
    } finally {
      await client.end();
    }
  });

  it.each([
    ['SWEEP_PARTITIONS', '0'],
    ['DATABASE_URL', 'nope'],
    ['RETENTION', 'forever'],
    ['RETENTION', '90m'], // meant 90d: below the one-day floor
    ['STALE_AFTER', '4 hours'],
    ['LIST_SAFETY_MARGIN', '500ms'],
    // Each of these passed once and then broke at run time (timers firing after 1 ms, timestamps
    // out of range): now refused at start.
    ['SWEEP_EVERY', '30d'],
    ['SWEEP_LOCK_TTL', '30d'],
    ['STALE_AFTER', '300000000d'],
    ['LIST_SAFETY_MARGIN', '300000000d'],
    ['RETENTION', '300000000d'],
    ['SWEEP_MAX_ROWS_PER_SECOND', '1.5'],
    ['SWEEP_MAX_REPLICA_LAG', '2 seconds'],
    ['SWEEP_MAX_ACTIVE_BACKENDS', '0'],
    ['SWEEP_MAX_STREAMS', '0'],
    ['SWEEP_MAX_STREAMS', 'two'],
    ['SWEEP_MAX_STREAMS', '1.5'],
    ['SWEEP_IMPACT_TARGET', '3'],
    ['SWEEP_IMPACT_TARGET', '1x'],
    ['SWEEP_IMPACT_TARGET', 'x3'],
    ['SWEEP_IMPACT_TARGET', '0ms'],
    ['SWEEP_IMPACT_TARGET', '1m'],
  ])('%s=%s exits 2 naming the variable', async (variable, value) => {
    await expectBadSetting(variable, value);
  });

  it.each(['DASHBOARD_PASSWORD', 'DASHBOARD_READER_PASSWORD'])(
    'the placeholder password of deploy/kubernetes/secret.yaml in %s exits 2 with one line naming it, without the password',
    async (variable) => {
      const placeholder = 'REPLACE-ME-with-a-long-random-password';
      const { code, output } = await runCli(['dashboard'], { [variable]: placeholder });
      expect(code, output).toBe(2);
      const lines = output.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(variable);
      expect(lines[0]).toMatch(/placeholder/);
      expect(lines[0]).not.toContain(placeholder);
    },
  );

  it('--help exits 0 and lists the commands', async () => {
    const { code, output } = await runCli(['--help'], {});
    expect(code).toBe(0);
    expect(output).toContain('Usage: audit-sweeper');
    expect(output).toMatch(/^\s+migrate\s+/m);
  });

  it('--help works even with a bad setting (it reads none)', async () => {
    const { code } = await runCli(['--help'], { SWEEP_EVERY: 'banana' });
    expect(code).toBe(0);
  });

  it('migrate --help exits 0 with its usage', async () => {
    const { code, output } = await runCli(['migrate', '--help'], {});
    expect(code).toBe(0);
    expect(output).toContain('Usage: audit-sweeper migrate');
  });

  it('an unknown command exits 2 naming it', async () => {
    const { code, output } = await runCli(['frobnicate'], {});
    expect(code).toBe(2);
    expect(output).toContain('unknown command "frobnicate"');
  });

  // Every verb's options go through one parser: a typo never starts a long-running process.
  it.each([
    ['worker', '--typo'],
    ['dashboard', '--typo'],
    ['start', '--typo'],
    ['sweep', '--wiat'],
    ['status', '--jsno'],
    ['worker', 'stray'],
  ])('%s %s exits 2 naming the bad argument, before any connection', async (verb, arg) => {
    const { code, output } = await runCli([verb, arg], {
      // Nothing answers here: a verb that started anyway would hang or fail differently.
      DATABASE_URL: 'postgres://root@127.0.0.1:1/none',
      REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(code).toBe(2);
    expect(output.trim().split('\n')).toHaveLength(1);
    expect(output).toContain(arg);
  });

  it('no command prints the help and exits 2', async () => {
    const { code, output } = await runCli([], {});
    expect(code).toBe(2);
    expect(output).toContain('Usage: audit-sweeper');
  });
});

describe('the built bin (bin/audit-sweeper.js, as installed)', () => {
  const databases: string[] = [];

  // The bin runs the compiled dist/, which `npm ci` builds through `prepare` and vitest's global
  // setup rebuilds before any file runs: never again here, where other files' processes are
  // loading it at the same time.

  afterAll(async () => {
    for (const name of databases)
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });

  async function bin(command: string[], args: string[], env: Record<string, string> = {}) {
    const [file, ...rest] = command as [string, ...string[]];
    const child = spawn(file, [...rest, ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const [code] = await once(child, 'exit');
    return { code: code as number, output };
  }
  const node = [process.execPath, 'bin/audit-sweeper.js'];

  it('node bin/audit-sweeper.js --help exits 0', async () => {
    const { code, output } = await bin(node, ['--help']);
    expect(code, output).toBe(0);
    expect(output).toContain('Usage: audit-sweeper');
    expect(output).toContain('migrate');
  });

  it('npx audit-sweeper --help finds the package bin (offline)', async () => {
    const { code, output } = await bin(['npx', '--offline', 'audit-sweeper'], ['--help']);
    expect(code, output).toBe(0);
    expect(output).toContain('Usage: audit-sweeper');
  });

  it('a bad setting exits 2 with one line naming it', async () => {
    const { code, output } = await bin(node, ['migrate'], { SWEEP_EVERY: 'banana' });
    expect(code).toBe(2);
    expect(output.trim().split('\n')).toHaveLength(1);
    expect(output).toContain('SWEEP_EVERY');
  });

  it('migrate twice on an empty database succeeds both times', async () => {
    const name = `test_config_bin_${randomBytes(4).toString('hex')}`;
    databases.push(name);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    const first = await bin(node, ['migrate'], { DATABASE_URL: url.toString() });
    expect(first.code, first.output).toBe(0);
    expect(first.output).toContain('database migrated');
    const second = await bin(node, ['migrate'], { DATABASE_URL: url.toString() });
    expect(second.code, second.output).toBe(0);
    expect(second.output).toContain('database already up to date');
  });
});
