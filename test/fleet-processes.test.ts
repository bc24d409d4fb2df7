import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Overview } from '../src/read/overview.ts';
import { type CliProcess, runCli, startCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { until } from './support/harness.ts';
import { type PrivateRedis, startPrivateRedis } from './support/private-servers.ts';
import { createTestPrefix } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * The fleet as operators see it through `status`, with real worker processes: each one's
 * heartbeat, settings drift between them and with the reader, the cutoff taken from the workers
 * rather than the reader's environment, exit codes by health, and the run history surviving a
 * Redis that restarted empty. Redis is private to this file, so it can be killed.
 */

const STARTED = /"msg":"sweep worker started"/;
let redis: PrivateRedis;
let db: TestDatabase;
let prefix: ReturnType<typeof createTestPrefix>;
const children = new Set<CliProcess>();

const env = () => ({
  DATABASE_URL: db.url,
  REDIS_URL: redis.url,
  QUEUE_PREFIX: prefix.prefix,
  RETENTION: 'off',
  WORKER_METRICS_PORT: '0',
  SWEEP_PARTITIONS: '4',
  SWEEP_EVERY: '1h',
  SWEEP_LOCK_TTL: '2s',
  LOG_LEVEL: 'info',
});

async function startWorker(extra: Record<string, string>): Promise<CliProcess> {
  const p = startCli(['worker'], { ...env(), ...extra });
  children.add(p);
  await p.waitForOutput(STARTED);
  return p;
}

/** `status --json` as a script runs it, with the reader's own (default) settings. */
async function status(extra: Record<string, string> = {}) {
  const { code, output } = await runCli(['status', '--json'], { ...env(), ...extra });
  const line = output.split('\n').find((l) => l.startsWith('{"generatedAt"'));
  if (!line) throw new Error(`no JSON from status (exit ${code}):\n${output}`);
  return { code, report: JSON.parse(line) as Overview, output };
}

/** A clean stop: each worker leaves the fleet at once and lets go of its jobs. */
async function stopAll() {
  for (const p of children) if (p.child.exitCode === null) p.child.kill('SIGTERM');
  await Promise.all([...children].map((p) => p.exited));
  children.clear();
}

beforeAll(async () => {
  redis = await startPrivateRedis();
  db = await createTestDatabase('fleet');
  prefix = createTestPrefix('fleet');
});
afterEach(async (context) => {
  if (context.task.result?.state === 'fail')
    for (const p of children)
      console.error(`--- worker ${p.child.pid}:\n${p.output().slice(-4000)}`);
  await stopAll();
});
afterAll(async () => {
  await stopAll();
  await db?.drop();
  await redis?.destroy();
});

describe('status and the fleet', () => {
  it('with no worker: down, exit 3, and says so', async () => {
    const { code, report } = await status();
    expect(code).toBe(3);
    expect(report.health.state).toBe('down');
    expect(report.health.reasons.map((r) => r.code)).toContain('no_live_worker');
    expect(report.workers).toEqual([]);
  });

  it('counts with the workers’ STALE_AFTER, not its own, and names drifting settings and processes', async () => {
    const fast = await startWorker({ STALE_AFTER: '30s' });
    // The first scheduled run finds nothing; rows made stale afterwards stay until the next.
    await expect.poll(async () => (await status()).report.recentRuns.length).toBeGreaterThan(0);
    await seed(db.pool, { kind: 'incomplete', count: 25, tag: 'minute', ageMs: 60_000 });

    // One worker, the reader with the default 4h: the reader's own setting would say 0 stale.
    const one = await status();
    expect(one.report.settingsSource).toBe('workers');
    expect(one.report.staleAfterMs).toBe(30_000);
    expect(one.report.backlog?.stale).toBe(25);
    expect(one.report.workers).toHaveLength(1);
    const w = one.report.workers?.[0];
    expect(w).toMatchObject({
      pid: fast.child.pid,
      concurrency: 2,
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      settings: { STALE_AFTER: 30_000, SWEEP_PARTITIONS: 4 },
    });
    expect(Date.now() - Date.parse(w?.lastHeartbeat ?? '')).toBeLessThan(15_000);
    // The worker's /metrics counts with the same cutoff and reports the health and the fleet.
    const port = /"port":(\d+)/.exec(await fast.waitForOutput(/probes and metrics listening/))?.[1];
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^audit_sweeper_backlog_rows\{state="stale"\} 25$/m);
    expect(metrics).toMatch(/^audit_sweeper_health\{state="healthy"\} 1$/m);
    expect(metrics).toMatch(/^audit_sweeper_health\{state="down"\} 0$/m);
    expect(metrics).toMatch(/^audit_sweeper_live_workers 1$/m);
    expect(one.code).toBe(0);
    expect(one.report.health).toEqual({ state: 'healthy', reasons: [] });
    // The reader differs from the worker: named, but not a fault of the fleet.
    const readerDrift = one.report.drift.find((d) => d.setting === 'STALE_AFTER');
    expect(readerDrift?.betweenWorkers).toBe(false);
    expect(readerDrift?.values).toEqual(
      expect.arrayContaining([
        { value: '30s', processes: [expect.stringContaining(`pid ${fast.child.pid}`)] },
        { value: '4h', processes: ['this status command'] },
      ]),
    );

    // A second worker with another cutoff and chunk size: drift between workers, degraded.
    const slow = await startWorker({ STALE_AFTER: '1h', SWEEP_CHUNK_SIZE: '50' });
    const two = await until(async () => {
      const s = await status({ STALE_AFTER: '30s' });
      return s.report.workers?.length === 2 ? s : undefined;
    });
    expect(two.code).toBe(1);
    expect(two.report.health.state).toBe('degraded');
    const drift = two.report.drift.filter((d) => d.betweenWorkers).map((d) => d.setting);
    expect(drift.sort()).toEqual(['STALE_AFTER', 'SWEEP_CHUNK_SIZE']);
    const reasons = two.report.health.reasons.filter((r) => r.code === 'settings_drift');
    expect(reasons.map((r) => r.message).join('\n')).toContain(`pid ${slow.child.pid}`);
    // Some worker finalizes rows older than 30 s: the smallest cutoff is the one that counts.
    expect(two.report.staleAfterMs).toBe(30_000);

    const text = await runCli(['status'], { ...env(), STALE_AFTER: '30s' });
    expect(text.code).toBe(1);
    expect(text.output).toMatch(/^health: DEGRADED/m);
    expect(text.output).toMatch(/STALE_AFTER differs: 30s \(worker .* pid \d+/);
    expect(text.output).toMatch(/^workers: 2$/m);
  });

  it('the run history survives Redis restarted empty; while Redis is away, status still reports the backlog', async () => {
    // With retention on, its hourly schedule fires at once: retention runs are recorded too.
    await startWorker({ STALE_AFTER: '30s', RETENTION: '90d' });
    await seed(db.pool, { kind: 'incomplete', count: 10, tag: 'history', ageMs: 60_000 });
    const sweep = await runCli(['sweep', '--wait', '--json'], env());
    expect(sweep.code, sweep.output).toBe(0);
    const before = (await status()).report;
    expect(before.historySource).toBe('postgres');
    const runIds = before.recentRuns.map((r) => r.runId);
    expect(runIds.length).toBeGreaterThan(0);

    await redis.kill();
    const away = await status();
    expect(away.code).not.toBe(0);
    expect(away.report.unavailable.redis).toBeTruthy();
    expect(away.report.workers).toBeNull();
    expect(away.report.backlog).not.toBeNull();
    expect(away.report.recentRuns.map((r) => r.runId)).toEqual(runIds);
    expect(away.report.health.reasons.map((r) => r.code)).toContain('redis_unreachable');

    await redis.start();
    // Empty now; the worker reconnects, heartbeats and puts its schedules back.
    const after = await until(async () => {
      const s = await status();
      return s.report.workers?.length === 1 ? s : undefined;
    });
    expect(after.report.recentRuns.map((r) => r.runId).slice(-runIds.length)).toEqual(runIds);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM audit_sweeper_runs WHERE kind = 'sweep' AND run_id = ANY($1)`,
      [runIds],
    );
    expect(rows[0].n).toBe(runIds.length);
    expect(after.report.lastRetention?.status).toMatchObject({
      deleted: 0,
      retentionMs: 90 * 86_400_000,
    });
  });
});
