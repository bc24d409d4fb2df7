import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.ts';
import { processFleet, sweeperEnv } from './support/harness.ts';
import { type PrivateRedis, startPrivateRedis } from './support/private-servers.ts';
import { useTestWorld } from './support/world.ts';

/**
 * What an operator meets at the command line, with real processes: --version, a --help that
 * lists every option, `sweep --wait` with no worker to take it, and `start` while Redis is down.
 */

const VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  .version as string;

const world = useTestWorld('operator_cli');
const fleet = processFleet();

afterEach((context) => fleet.cleanup(context));
describe('audit-sweeper --version and --help', () => {
  it('--version prints the package version and exits 0, reading no setting', async () => {
    const { code, output } = await runCli(['--version'], { SWEEP_EVERY: 'banana' });
    expect(code).toBe(0);
    expect(output.trim()).toBe(VERSION);
  });

  it('a command that has finished exits even if something keeps the process open, naming it', async () => {
    // A listening server nobody closes, loaded before the CLI: as a leaked socket would be.
    const keepOpen = join(tmpdir(), `audit-sweeper-keep-open-${process.pid}.cjs`);
    writeFileSync(keepOpen, "require('node:net').createServer().listen(0, '127.0.0.1');\n");
    try {
      const { code, output } = await runCli(['--version'], {
        NODE_OPTIONS: `--require ${keepOpen}`,
      });
      expect(code).toBe(0);
      expect(output).toContain(VERSION);
      expect(output).toMatch(
        /finished, but still running 5 s later \(open: .*TCPServerWrap.*\); exiting/,
      );
    } finally {
      rmSync(keepOpen, { force: true });
    }
  });

  it('--help lists every command with each of its options and what it does', async () => {
    const { code, output } = await runCli(['--help'], {});
    expect(code).toBe(0);
    expect(output).toContain(`audit-sweeper ${VERSION}`);
    for (const verb of ['migrate', 'worker', 'start', 'sweep', 'status', 'dashboard', 'simulate']) {
      const usage = await runCli([verb, '--help'], {});
      expect(usage.code).toBe(0);
      // Every option the command's own usage names is in the top-level help, under the
      // command, with a description.
      const options = [...usage.output.matchAll(/\[--([\w-]+)/g)].map((m) => m[1]);
      const section = output.split(new RegExp(`^  ${verb} .*$`, 'm'))[1]?.split(/^ {2}\w/m)[0];
      expect(section, verb).toBeDefined();
      for (const option of options)
        expect(section, `${verb} --${option}`).toMatch(new RegExp(`--${option}\\b.*\\s\\w+`));
    }
    expect(output).toMatch(/--timeout <value>\s+with --wait/);
    expect(output).toContain('pino-pretty');
  });
});

describe('sweep --wait', () => {
  it('with no worker: says it is waiting for one, then gives up at --timeout with exit 3', async () => {
    const started = Date.now();
    const { code, output } = await runCli(
      ['sweep', '--wait', '--timeout', '8s'],
      sweeperEnv({ databaseUrl: world.db.url, prefix: world.prefix }),
    );
    expect(code, output).toBe(3);
    const lines = output.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(
        /^waiting for a worker: none has taken the request after 5s .*QUEUE_PREFIX=/,
      ),
      expect.stringMatching(
        /^timed out after 8s: no worker has taken sweep request \S+ \(waiting\)/,
      ),
    ]);
    // It gave up at the timeout, not much later (startup and shutdown included).
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it.each([
    [['sweep', '--timeout', '10s'], '--timeout only applies with --wait'],
    [['sweep', '--wait', '--timeout', 'soon'], '--timeout must be a duration'],
    // Longer than a timer holds (about 24.8 days): it would give up at once.
    [['sweep', '--wait', '--timeout', '25d'], '--timeout must be from 1s to 24d'],
    [['pause', '--for', '99999999999d'], '--for must be from 1s to 365d'],
    [['pause', '--for', '366d'], '--for must be from 1s to 365d'],
    [['pause', '--for', 'soon'], '--for must be a duration'],
    [['simulate', '--duration', '25d'], 'invalid --duration "25d": must be from 1ms to 24d'],
  ])('%j exits 2 with one line', async (args, message) => {
    const { code, output } = await runCli(args, {});
    expect(code).toBe(2);
    expect(output.trim().split('\n')).toEqual([expect.stringContaining(message)]);
  });
});

describe('start with Redis unreachable at boot', () => {
  let redis: PrivateRedis | undefined;
  afterAll(async () => {
    await redis?.destroy();
  });

  it('serves the dashboard at once, and the worker starts once Redis comes', async () => {
    redis = await startPrivateRedis();
    await redis.kill();
    const start = fleet.start(
      ['start'],
      sweeperEnv(
        { databaseUrl: world.db.url, prefix: world.prefix, redisUrl: redis.url },
        { DASHBOARD_PORT: '0', DASHBOARD_PASSWORD: 'operator-cli-password' },
      ),
    );
    const listening = JSON.parse(await start.waitForOutput(/dashboard listening/));
    const origin = `http://127.0.0.1:${listening.port}`;
    expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    // Not ready (Redis is down), and says why.
    const ready = await fetch(`${origin}/readyz`);
    expect(ready.status).toBe(503);
    expect((await ready.json()).postgres).toBe('ok');
    expect(start.output()).toContain('Redis unreachable at start (check REDIS_URL)');
    expect(start.output()).not.toContain('sweep worker started');

    await redis.start();
    await start.waitForOutput(/sweep worker started/);
    // It sweeps: its first tick (the schedule fires at once) makes a run.
    await start.waitForOutput(/"msg":"sweep run finished"/);
    await expect.poll(async () => (await fetch(`${origin}/readyz`)).status).toBe(200);
    start.child.kill('SIGTERM');
    expect(await start.exited).toBe(0);
  });

  it('stops cleanly on SIGTERM while still waiting for Redis', async () => {
    const deadRedis = `redis://127.0.0.1:${redis?.port ?? 1}`;
    await redis?.kill();
    const start = fleet.start(
      ['start'],
      sweeperEnv(
        { databaseUrl: world.db.url, prefix: world.prefix, redisUrl: deadRedis },
        { DASHBOARD_PORT: '0', DASHBOARD_PASSWORD: 'operator-cli-password' },
      ),
    );
    await start.waitForOutput(/dashboard listening/);
    start.child.kill('SIGTERM');
    expect(await start.exited, start.output()).toBe(0);
    expect(start.output()).toContain('"msg":"shut down cleanly"');
  });
});
