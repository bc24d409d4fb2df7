import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pause, resume } from '../src/pause.ts';
import { HEALTH_REASON_CODES } from '../src/read/health.ts';
import { VERSION } from '../src/version.ts';
import { AUTH, startDashboardWithWorker } from './support/dashboard-harness.ts';
import { processFleet } from './support/harness.ts';
import { freePort } from './support/private-servers.ts';

/**
 * The metrics the alert rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana)
 * read beyond the backlog: what each process is, each live worker's heartbeat, every health
 * reason by code, the pause's start and end, stores that cannot be read, connection errors, and
 * BullMQ's own job counts for Bull Board's charts.
 */

let d: Awaited<ReturnType<typeof startDashboardWithWorker>>;
const fleet = processFleet();
beforeAll(async () => {
  d = await startDashboardWithWorker('alert_metrics');
});
afterAll(async () => {
  await d?.close();
});
afterEach(async (context) => {
  await fleet.cleanup(context);
});

const dashboardMetrics = async () => (await d.get('/metrics')).text();
/** The value of one series (name with its labels, as printed), NaN when absent. */
const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
};
const seriesOf = (text: string, name: string) =>
  text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

describe('metrics for alerts and dashboards', () => {
  it('each process says what it is, and every live worker has a heartbeat series', async () => {
    const text = await dashboardMetrics();
    expect(value(text, `audit_sweeper_info{role="dashboard",version="${VERSION}"}`)).toBe(1);
    const own = await d.worker.metrics.registry.metrics();
    expect(value(own, `audit_sweeper_info{role="worker",version="${VERSION}"}`)).toBe(1);

    // One series per live worker process (host:pid), valued at its last heartbeat.
    const beats = seriesOf(text, 'audit_sweeper_worker_heartbeat_timestamp_seconds');
    expect(beats).toHaveLength(1);
    expect(beats[0]).toMatch(/\{worker="[^"]+:\d+"\} /);
    const at = Number(beats[0]?.split(' ')[1]);
    expect(Date.now() / 1000 - at).toBeGreaterThanOrEqual(0);
    expect(Date.now() / 1000 - at).toBeLessThan(15);
    expect(seriesOf(text, 'audit_sweeper_worker_jobs_in_hand')).toHaveLength(1);
  });

  it('every health reason has its own series; the pause has a start and an end', async () => {
    let text = await dashboardMetrics();
    for (const code of HEALTH_REASON_CODES)
      expect(value(text, `audit_sweeper_health_reason{code="${code}"}`), code).toBe(0);
    expect(value(text, 'audit_sweeper_pause_since_timestamp_seconds')).toBeNaN();
    // prom-client writes NaN as `Nan`, which Prometheus reads as NaN.
    expect(text).toMatch(/^audit_sweeper_pause_until_timestamp_seconds NaN$/im);

    const timed = await pause(d.sq, d.redis, { by: 'test', forMs: 600_000 });
    text = await dashboardMetrics();
    expect(value(text, 'audit_sweeper_health_reason{code="paused"}')).toBe(1);
    expect(value(text, 'audit_sweeper_paused')).toBe(1);
    expect(value(text, 'audit_sweeper_pause_since_timestamp_seconds')).toBe(
      Date.parse(timed.since) / 1000,
    );
    expect(value(text, 'audit_sweeper_pause_until_timestamp_seconds')).toBe(
      Date.parse(timed.since) / 1000 + 600,
    );

    await pause(d.sq, d.redis, { by: 'test' });
    text = await dashboardMetrics();
    expect(text).toMatch(/^audit_sweeper_pause_until_timestamp_seconds \+Inf$/m);

    await resume(d.sq, d.redis);
    text = await dashboardMetrics();
    expect(value(text, 'audit_sweeper_health_reason{code="paused"}')).toBe(0);
    expect(value(text, 'audit_sweeper_pause_since_timestamp_seconds')).toBeNaN();
  });

  it("workers record BullMQ's own job metrics, which Bull Board charts", async () => {
    const before = (await d.sq.partitions.getMetrics('completed')).meta.count;
    const res = await d.get('/api/sweeps', { method: 'POST' });
    expect(res.status).toBe(202);
    await expect
      .poll(async () => (await d.sq.partitions.getMetrics('completed')).meta.count)
      .toBeGreaterThanOrEqual(before + 8);
    expect((await d.sq.queue.getMetrics('completed')).meta.count).toBeGreaterThan(0);
  });

  it('a dashboard that cannot read its stores says so per store, and counts the errors', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const p = fleet.start(['dashboard'], {
      ...d.env,
      REDIS_URL: `redis://${dead}`,
      DATABASE_READ_URL: `postgres://root@${dead}/nothing`,
      DASHBOARD_PORT: '0',
    });
    const port = JSON.parse(await p.waitForOutput(/"msg":"dashboard listening"/)).port;
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
      headers: { authorization: AUTH },
    });
    // Served (never a 503 for a store that does not answer), with the counters.
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(value(text, 'audit_sweeper_store_up{store="redis"}')).toBe(0);
    expect(value(text, 'audit_sweeper_store_up{store="postgres"}')).toBe(0);
    expect(value(text, 'audit_sweeper_health_reason{code="unreachable"}')).toBe(1);
    expect(value(text, 'audit_sweeper_live_workers')).toBeNaN();
    expect(text).toMatch(/^audit_sweeper_paused NaN$/im);
    expect(value(text, 'audit_sweeper_connection_errors_total{store="redis"}')).toBeGreaterThan(0);
    // Counted when they happen: the scrape's own failed read shows from the next scrape on.
    await expect
      .poll(async () => {
        const again = await fetch(`http://127.0.0.1:${port}/metrics`, {
          headers: { authorization: AUTH },
        });
        return value(await again.text(), 'audit_sweeper_connection_errors_total{store="postgres"}');
      })
      .toBeGreaterThan(0);
    // The one that answers is up: here, the dashboard under test.
    const ok = await dashboardMetrics();
    expect(value(ok, 'audit_sweeper_store_up{store="redis"}')).toBe(1);
    expect(value(ok, 'audit_sweeper_store_up{store="postgres"}')).toBe(1);
  });
});
