import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startCli } from './support/cli.ts';
import { basic } from './support/dashboard-harness.ts';
import { TEST_REDIS_URL } from './support/redis.ts';
import { useTestWorld } from './support/world.ts';

/**
 * `audit-sweeper dashboard` as a real process: with no DASHBOARD_PASSWORD it makes one up and
 * prints it once, never running open; SIGTERM shuts it down cleanly.
 */

const world = useTestWorld('dashboard_cli');

describe('audit-sweeper dashboard', () => {
  it('generates a password when none is set, prints it once, and requires it', async () => {
    const cli = startCli(['dashboard'], {
      DATABASE_URL: world.db.url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: world.prefix,
      DASHBOARD_PORT: '0',
      DASHBOARD_BASE_PATH: '/audit',
      DASHBOARD_USER: 'ops',
      DASHBOARD_PASSWORD: '',
    });
    try {
      const listening = JSON.parse(await cli.waitForOutput(/dashboard listening/));
      const origin = `http://127.0.0.1:${listening.port}/audit`;
      const lines = cli
        .output()
        .split('\n')
        .filter((l) => l.includes('generated a password'));
      expect(lines).toHaveLength(1);
      const { user, password } = JSON.parse(lines[0] ?? '{}');
      expect(user).toBe('ops');
      expect(password).toMatch(/^[\w-]{20,}$/);

      expect((await fetch(`${origin}/healthz`)).status).toBe(200);
      expect((await fetch(`${origin}/api/overview`)).status).toBe(401);
      const wrong = await fetch(`${origin}/api/overview`, {
        headers: { authorization: basic('ops', 'password') },
      });
      expect(wrong.status).toBe(401);
      const right = await fetch(`${origin}/api/overview`, {
        headers: { authorization: basic('ops', password) },
      });
      expect(right.status).toBe(200);
      expect((await right.json()).backlog).toMatchObject({ stale: 0, inFlight: 0 });
      // Printed once only, not on every request.
      expect(cli.output().split('generated a password').length).toBe(2);
    } finally {
      cli.child.kill('SIGTERM');
    }
    expect(await cli.exited).toBe(0);
  });

  it('a SIGTERM during start-up, while Redis does not answer, still shuts down cleanly', async () => {
    // A Redis that takes the connection and never answers: start-up waits for it (up to 10 s).
    const held: Socket[] = [];
    const silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const cli = startCli(['dashboard'], {
      DATABASE_URL: world.db.url,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      QUEUE_PREFIX: world.prefix,
      DASHBOARD_PORT: '0',
      DASHBOARD_PASSWORD: '',
    });
    try {
      // Printed before the wait for Redis.
      await cli.waitForOutput(/generated a password/);
      cli.child.kill('SIGTERM');
      expect(await cli.exited, cli.output()).toBe(0);
      expect(cli.output()).toContain('shut down cleanly');
    } finally {
      cli.child.kill('SIGKILL');
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  it('SIGTERM lets a request in flight finish (graceful drain), refuses new connections, then exits 0', async () => {
    const cli = startCli(['dashboard'], {
      DATABASE_URL: world.db.url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: world.prefix,
      DASHBOARD_PORT: '0',
      DASHBOARD_PASSWORD: 'drain the requests',
      // The slow request below waits on a lock: it must not time out first.
      API_STATEMENT_TIMEOUT: '1h',
    });
    // Holds the audit log, so that an API request stays in flight until COMMIT.
    const locker = await world.db.pool.connect();
    try {
      const { port } = JSON.parse(await cli.waitForOutput(/dashboard listening/));
      const origin = `http://127.0.0.1:${port}`;
      await locker.query('BEGIN; LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE');
      const inFlight = fetch(`${origin}/v1/audit-log?start_time=2020-01-01T00:00:00Z`, {
        headers: { authorization: basic('admin', 'drain the requests') },
      });
      inFlight.catch(() => {});
      // The API's query is waiting for the lock: the request is in flight.
      await expect
        .poll(async () => {
          const { rows } = await world.db.pool.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'audit-sweeper api'
                AND wait_event_type = 'Lock'`,
          );
          return rows[0].n;
        })
        .toBe(1);
      cli.child.kill('SIGTERM');
      await cli.waitForOutput(/shutting down/);
      // No new connection is taken...
      await expect
        .poll(() =>
          fetch(`${origin}/healthz`).then(
            () => 'accepted',
            () => 'refused',
          ),
        )
        .toBe('refused');
      // ...and the one in flight is answered once its query can go on.
      await locker.query('COMMIT');
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ items: [] });
      expect(await cli.exited, cli.output()).toBe(0);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      locker.release();
      cli.child.kill('SIGKILL');
    }
  });
});
