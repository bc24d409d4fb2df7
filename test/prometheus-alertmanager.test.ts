import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { RULES_FILE } from '../deploy/prometheus/prometheus-rule.ts';
import { PASSWORD, USER } from './support/dashboard-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { processFleet, sweeperEnv } from './support/harness.ts';
import { freePort } from './support/private-servers.ts';
import {
  prometheusApi,
  type Server,
  startAlertmanager,
  startPrometheus,
  startWebhookReceiver,
} from './support/prometheus.ts';
import { createTestPrefix } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * The shipped alert rules on a real Prometheus and Alertmanager (private instances on loopback):
 * Prometheus scrapes a worker and the dashboard as the README says to; with the workers stopped,
 * a stale backlog fires AuditSweeperBacklogBehind, which reaches Alertmanager and its webhook;
 * a worker started again sweeps it, and the alert is resolved. The rules are the shipped file's,
 * with every `for` cut to 1s so that this takes seconds, not minutes.
 */

const fleet = processFleet();
let db: TestDatabase;
let prefix: ReturnType<typeof createTestPrefix>;
let webhook: Awaited<ReturnType<typeof startWebhookReceiver>>;
let alertmanager: Server;
let prometheus: Server;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase('prometheus_alerts');
  prefix = createTestPrefix('prometheus_alerts');
  const [workerPort, dashboardPort] = [await freePort(), await freePort()];
  // A row is stale after 1 s and the health limit is 2 x 1 s + 1 s: a backlog the sweeper
  // cannot drain turns the health degraded (backlog_behind) at once.
  env = sweeperEnv(
    { databaseUrl: db.url, prefix: prefix.prefix },
    {
      STALE_AFTER: '1s',
      SWEEP_EVERY: '1s',
      WORKER_METRICS_PORT: String(workerPort),
      DASHBOARD_PORT: String(dashboardPort),
      DASHBOARD_USER: USER,
      DASHBOARD_PASSWORD: PASSWORD,
    },
  );
  webhook = await startWebhookReceiver();
  alertmanager = await startAlertmanager(webhook.url);
  const shipped = parse(readFileSync(RULES_FILE, 'utf8')) as {
    groups: { rules: { for?: string }[] }[];
  };
  for (const rule of shipped.groups.flatMap((g) => g.rules)) if (rule.for) rule.for = '1s';
  prometheus = await startPrometheus({
    rules: shipped,
    alertmanager: alertmanager.url,
    scrapeConfigs: [
      {
        job_name: 'audit-sweeper-worker',
        static_configs: [{ targets: [`127.0.0.1:${workerPort}`] }],
      },
      {
        job_name: 'audit-sweeper-dashboard',
        basic_auth: { username: USER, password: PASSWORD },
        static_configs: [{ targets: [`127.0.0.1:${dashboardPort}`] }],
      },
    ],
  });
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await alertmanager?.stop();
  await webhook?.close();
  await db?.drop();
  await prefix?.cleanup();
});

afterEach(async (context) => {
  await fleet.cleanup(context, async () =>
    [prometheus, alertmanager].map((s) => s?.output().slice(-3000)).join('\n'),
  );
});

type Alert = { labels: Record<string, string>; state: string };
const activeAlerts = async (name: string) =>
  (await prometheusApi<{ alerts: Alert[] }>(prometheus, '/api/v1/alerts')).alerts.filter(
    (a) => a.labels.alertname === name,
  );
const upByJob = async () => {
  const data = await prometheusApi<{
    result: { metric: { job: string }; value: [number, string] }[];
  }>(prometheus, `/api/v1/query?query=${encodeURIComponent('up')}`);
  return Object.fromEntries(data.result.map((r) => [r.metric.job, r.value[1]]));
};
const staleLeft = async () =>
  (
    await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL',
    )
  ).rows[0]?.n;

describe('the alert rules on a real Prometheus and Alertmanager', () => {
  it('a backlog nobody sweeps fires AuditSweeperBacklogBehind to Alertmanager; a worker resolves it', async () => {
    const dashboard = fleet.start(['dashboard'], env);
    let worker = fleet.start(['worker'], env);
    await worker.waitForOutput(/"msg":"sweep worker started"/);
    await dashboard.waitForOutput(/"msg":"dashboard listening"/);
    await expect
      .poll(upByJob)
      .toEqual({ 'audit-sweeper-worker': '1', 'audit-sweeper-dashboard': '1' });
    // The rules evaluate on what they scrape: the recorded fleet-wide backlog exists, and with a
    // worker sweeping, the backlog alert stays quiet.
    await expect
      .poll(
        async () =>
          (
            await prometheusApi<{ result: unknown[] }>(
              prometheus,
              `/api/v1/query?query=${encodeURIComponent('audit_sweeper:backlog_rows:max{state="stale"}')}`,
            )
          ).result.length,
      )
      .toBe(1);
    expect(await activeAlerts('AuditSweeperBacklogBehind')).toEqual([]);

    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    await seed(db.pool, { kind: 'incomplete', count: 500, tag: 'stale', ageMs: 3_600_000 });

    const firingOf = () =>
      webhook.received.find(
        (a) => a.labels.alertname === 'AuditSweeperBacklogBehind' && a.status === 'firing',
      );
    await expect.poll(firingOf).toBeDefined();
    const firing = firingOf();
    expect(firing?.labels).toMatchObject({ severity: 'critical', state: 'stale' });
    expect(firing?.annotations.description).toMatch(/^500 stale entries/);
    expect(firing?.annotations.runbook_url).toBe('docs/runbook.md#auditsweeperbacklogbehind');
    // The cause fires too: no worker heartbeats.
    await expect
      .poll(() => webhook.received.some((a) => a.labels.alertname === 'AuditSweeperNoLiveWorker'))
      .toBe(true);
    expect(await staleLeft()).toBe(500);

    worker = fleet.start(['worker'], env);
    await expect.poll(staleLeft).toBe(0);
    await expect
      .poll(() =>
        webhook.received.some(
          (a) => a.labels.alertname === 'AuditSweeperBacklogBehind' && a.status === 'resolved',
        ),
      )
      .toBe(true);
    expect(await activeAlerts('AuditSweeperBacklogBehind')).toEqual([]);
  });
});
