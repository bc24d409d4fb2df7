import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerUrlSecret, scrubSecrets } from '../src/secrets.ts';
import { basic } from './support/dashboard-harness.ts';
import { processFleet, sweeperEnv } from './support/harness.ts';
import { freePort, type PrivateRedis, startPrivateRedis } from './support/private-servers.ts';
import { useTestWorld } from './support/world.ts';

/**
 * Credentials never reach a log line or an error message. Real processes run with passwords in
 * DATABASE_URL and REDIS_URL (a Redis that requires its password), a DASHBOARD_PASSWORD, and
 * every failure an operator is likely to meet (servers down, a wrong password, bad settings),
 * at LOG_LEVEL=trace; then everything they wrote is searched for the secrets.
 */

const token = () => randomBytes(6).toString('hex');
const PG_SECRET = `pgpw${token()}`;
const REDIS_SECRET = `rdpw${token()}`;
const WRONG_REDIS_SECRET = `wrongpw${token()}`;
const DASHBOARD_SECRET = `dashpw${token()}`;
const REJECTED_SECRET = `Sh0${token().slice(0, 4)}`; // 7 characters: too short, so rejected
/** The two halves of a password with "/" in it, and a Sentinel's own password. */
const SLASHED = { first: `Ab${token()}`, second: `cd${token()}`, sentinel: `snt${token()}` };
const SECRETS = [
  PG_SECRET,
  REDIS_SECRET,
  WRONG_REDIS_SECRET,
  DASHBOARD_SECRET,
  REJECTED_SECRET,
  ...Object.values(SLASHED),
];

const world = useTestWorld('secrets');
let redis: PrivateRedis;
const fleet = processFleet();
/** What every process of this file wrote, stdout and stderr. */
const written: string[] = [];

beforeAll(async () => {
  redis = await startPrivateRedis({ password: REDIS_SECRET });
});
afterEach((context) => fleet.cleanup(context));
afterAll(async () => {
  await redis?.destroy();
});

/** The test database's URL with a password in it (the shared server trusts, so it is ignored). */
const pgUrl = (port?: number) => {
  const url = new URL(world.db.url);
  url.password = PG_SECRET;
  if (port) url.port = String(port);
  return url.toString();
};

const env = (overrides: Record<string, string> = {}) =>
  sweeperEnv(
    { databaseUrl: pgUrl(), prefix: world.prefix, redisUrl: redis.url },
    {
      LOG_LEVEL: 'trace',
      SWEEP_EVERY: '1s',
      SWEEP_PARTITIONS: '4',
      DASHBOARD_PORT: '0',
      DASHBOARD_PASSWORD: DASHBOARD_SECRET,
      ...overrides,
    },
  );

/** Runs a command to its end; keeps what it wrote. */
async function run(args: string[], e: Record<string, string>) {
  const p = fleet.start(args, e);
  const code = await p.exited;
  written.push(p.output());
  return { code, output: p.output() };
}

describe('scrubSecrets', () => {
  it.each([
    ['postgres://root:pw1@db:5432/a', 'postgres://root:***@db:5432/a'],
    ['"redis://:p@ss@cache:6379/0"', '"redis://:***@cache:6379/0"'],
    ['redis+cluster://u:x%40y@h1:7000,h2:7001', 'redis+cluster://u:***@h1:7000,h2:7001'],
    [
      'postgres://root@db/a and https://example.com/x',
      'postgres://root@db/a and https://example.com/x',
    ],
  ])('masks the password of %s', (text, masked) => {
    expect(scrubSecrets(text)).toBe(masked);
  });

  it("masks a registered URL's passwords anywhere, the Sentinel's in its query too", () => {
    registerUrlSecret('redis+sentinel://:mainpw123@s1:26379/m?sentinelPassword=sentpw456');
    expect(scrubSecrets('auth mainpw123 failed; sentinelPassword=sentpw456')).toBe(
      'auth *** failed; sentinelPassword=***',
    );
  });
});

describe('credentials stay out of logs and errors', () => {
  it('a working fleet: migrate, worker, sweep, status, dashboard (with a wrong login)', async () => {
    expect((await run(['migrate'], env())).code).toBe(0);
    const worker = fleet.start(['worker'], env());
    await worker.waitForOutput(/sweep worker started/);
    const sweep = await run(['sweep', '--wait', '--json'], env());
    expect(sweep.code, sweep.output).toBe(0);
    expect((await run(['status'], env())).code).toBe(0);

    const dashboard = fleet.start(['dashboard'], env());
    const { port } = JSON.parse(await dashboard.waitForOutput(/dashboard listening/));
    const origin = `http://127.0.0.1:${port}`;
    const wrong = await fetch(`${origin}/api/overview`, {
      headers: { authorization: basic('admin', `${DASHBOARD_SECRET}x`) },
    });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${origin}/api/overview`, {
      headers: { authorization: basic('admin', DASHBOARD_SECRET) },
    });
    expect(right.status).toBe(200);
    for (const p of [worker, dashboard]) {
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      written.push(p.output());
    }
  });

  it('PostgreSQL down: errors name PostgreSQL and DATABASE_URL, never the password', async () => {
    const deadPort = await freePort();
    const migrate = await run(['migrate'], env({ DATABASE_URL: pgUrl(deadPort) }));
    expect(migrate.code).toBe(1);
    expect(migrate.output).toMatch(/PostgreSQL at 127\.0\.0\.1:\d+\/\S+ .*check DATABASE_URL/);

    const worker = fleet.start(['worker'], env({ DATABASE_URL: pgUrl(deadPort) }));
    const failed = await worker.waitForOutput(/"msg":"job failed"/);
    expect(failed).toContain('PostgreSQL');
    expect(failed).toContain('DATABASE_URL');
    worker.child.kill('SIGTERM');
    await worker.exited;
    written.push(worker.output());
  });

  it('Redis down or refusing the password; bad settings', async () => {
    const deadRedis = `redis://:${REDIS_SECRET}@127.0.0.1:${await freePort()}`;
    const down = await run(['status'], env({ REDIS_URL: deadRedis }));
    expect(down.code).toBe(1);
    expect(down.output).toContain('redis://:***@127.0.0.1');
    expect(down.output).toContain('check REDIS_URL');

    const wrongPassword = redis.url.replace(REDIS_SECRET, WRONG_REDIS_SECRET);
    expect((await run(['sweep'], env({ REDIS_URL: wrongPassword }))).code).not.toBe(0);

    const rejected = await run(['status'], env({ DASHBOARD_PASSWORD: REJECTED_SECRET }));
    expect(rejected.code).toBe(2);
    expect(rejected.output.trim().split('\n')).toEqual([
      expect.stringMatching(/^invalid setting DASHBOARD_PASSWORD \(value not shown/),
    ]);
    const badScheme = await run(
      ['status'],
      env({ REDIS_URL: `http://:${REDIS_SECRET}@127.0.0.1:6379` }),
    );
    expect(badScheme.code).toBe(2);
    expect(badScheme.output.trim()).toContain(
      'invalid setting REDIS_URL (scheme http://, host 127.0.0.1; value not shown: it may hold a password): unknown scheme "http://"',
    );
  });

  // A password with "/" (openssl rand -base64 makes one four times in ten) breaks the URL apart:
  // no masking can tell the password from the rest, so a URL that fails to parse is never shown.
  it.each([
    [
      'DATABASE_URL',
      `postgres://app:${SLASHED.first}/${SLASHED.second}@db/audit`,
      'scheme postgres://',
    ],
    [
      'DATABASE_READ_URL',
      `postgres://app:${SLASHED.first}#${SLASHED.second}@db/audit`,
      'scheme postgres://',
    ],
    ['REDIS_URL', `redis://:${SLASHED.first}/${SLASHED.second}@cache:6379`, 'scheme redis://'],
    [
      'REDIS_URL',
      `redis+sentinel://:${SLASHED.first}/${SLASHED.second}@s1:26379/m?sentinelPassword=${SLASHED.sentinel}`,
      'scheme redis+sentinel://',
    ],
    [
      'REDIS_URL',
      `redis+sentinel://s1:26379/m?sentinelPassword=${SLASHED.sentinel}&db=1`,
      'scheme redis+sentinel://',
    ],
  ])(
    '%s with a malformed URL: exit 2, one line naming it and its scheme, no piece of the password',
    async (name, value, outline) => {
      const bad = await run(['status'], env({ [name]: value }));
      expect(bad.code).toBe(2);
      const lines = bad.output.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^invalid setting ${name} \\(${outline.replace(/[+/]/g, '\\$&')}`),
      );
      for (const piece of Object.values(SLASHED)) expect(bad.output).not.toContain(piece);
      expect(bad.output).not.toContain('sentinelPassword=');
    },
  );

  it('a short URL password is masked where it stands alone, whatever its length', () => {
    registerUrlSecret('postgres://app:q7z@db/audit');
    expect(scrubSecrets('password q7z was refused; q7zebra stays')).toBe(
      'password *** was refused; q7zebra stays',
    );
  });

  it('no secret appears in anything the processes wrote', () => {
    const all = written.join('\n');
    // Plenty was written, URLs included, so the search means something.
    expect(all.split('\n').length).toBeGreaterThan(30);
    expect(all).toContain('127.0.0.1');
    for (const secret of SECRETS) {
      expect(all).not.toContain(secret);
      expect(all).not.toContain(encodeURIComponent(secret));
    }
  });
});
