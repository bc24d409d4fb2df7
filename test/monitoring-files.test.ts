import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  PROMETHEUS_RULE_FILE,
  prometheusRule,
  RULES_FILE,
} from '../deploy/prometheus/prometheus-rule.ts';
import type { Dashboard } from './support/dashboard-harness.ts';
import { metricsIn, scrapeExportedMetrics } from './support/exported-metrics.ts';
import { grafanaTypeErrors } from './support/grafana-schema.ts';

/**
 * What deploy/ ships for monitoring, checked against the product: the alert rules (promtool's
 * own checks and unit tests, one source for the plain file and the PrometheusRule, a runbook
 * section per alert) and the Grafana dashboard (Grafana's published types), and every metric
 * either reads is one a real dashboard or worker serves.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const run = promisify(execFile);
const promtool = (...args: string[]) => run('promtool', args, { cwd: ROOT });

type Rule = {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
};
const groups = (parse(read(RULES_FILE)) as { groups: { rules: Rule[] }[] }).groups;
const rules = groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert);

type Panel = {
  type: string;
  title: string;
  id: number;
  datasource?: { uid: string };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  panels?: Panel[];
};
const GRAFANA_FILE = 'deploy/grafana/audit-sweeper.json';
const grafana = JSON.parse(read(GRAFANA_FILE)) as { panels: Panel[] };
const panels = grafana.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

let exported: Set<string>;
let dashboard: Dashboard | undefined;
beforeAll(async () => {
  ({ names: exported, dashboard } = await scrapeExportedMetrics('monitoring_files'));
});
afterAll(async () => {
  await dashboard?.close();
});

describe('the Prometheus rules', () => {
  it('pass promtool check rules and their unit tests (promtool test rules)', async () => {
    const check = await promtool('check', 'rules', RULES_FILE);
    expect(check.stdout).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
    const { stdout } = await promtool(
      'test',
      'rules',
      'deploy/prometheus/audit-sweeper.rules.test.yml',
    );
    expect(stdout).toMatch(/SUCCESS/);
  });

  it('the unit tests see each alert fire, and promtool fails them when an alert breaks', async () => {
    const tests = parse(read('deploy/prometheus/audit-sweeper.rules.test.yml')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const fired = new Set(
      tests.tests.flatMap((t) =>
        (t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname),
      ),
    );
    for (const a of alerts)
      expect(fired, `a promtool case where ${a.alert} fires`).toContain(a.alert);

    // The same tests against rules whose every alert compares the wrong way fail.
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    const broken = groups.map((g) => ({
      ...g,
      rules: g.rules.map((r) => (r.alert ? { ...r, expr: `(${r.expr}) unless (${r.expr})` } : r)),
    }));
    writeFileSync(join(dir, 'audit-sweeper.rules.yml'), stringify({ groups: broken }));
    writeFileSync(
      join(dir, 'audit-sweeper.rules.test.yml'),
      read('deploy/prometheus/audit-sweeper.rules.test.yml'),
    );
    await expect(
      run('promtool', ['test', 'rules', 'audit-sweeper.rules.test.yml'], { cwd: dir }),
    ).rejects.toThrow(/FAILED/);
  });

  it('the PrometheusRule of the kustomize component is generated from the plain file', () => {
    expect(read(PROMETHEUS_RULE_FILE)).toBe(prometheusRule(read(RULES_FILE)));
    const resource = parse(read(PROMETHEUS_RULE_FILE));
    expect(resource.kind).toBe('PrometheusRule');
    expect(resource.spec.groups).toEqual(groups);
  });

  it('every alert has a severity, a summary, a description and a runbook section', () => {
    const runbook = read('docs/runbook.md');
    // GitHub's anchors: lower case, punctuation dropped, spaces as dashes.
    const anchors = new Set(
      [...runbook.matchAll(/^#+ (.+)$/gm)].map((m) =>
        (m[1] as string)
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    for (const a of alerts) {
      expect(['critical', 'warning'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
      const [page, anchor] = (a.annotations?.runbook_url ?? '').split('#');
      expect(page, a.alert).toBe('docs/runbook.md');
      expect(anchors, `${a.alert}: runbook section #${anchor}`).toContain(anchor);
      expect(anchor).toBe(a.alert?.toLowerCase());
    }
  });

  it('the README names every alert', () => {
    const readme = read('README.md');
    for (const a of alerts) expect(readme, a.alert).toContain(`\`${a.alert}\``);
  });

  it('every metric the rules read is one the product serves', () => {
    const used = rules.flatMap((r) => metricsIn(r.expr));
    expect(used.length).toBeGreaterThan(10);
    for (const name of used) expect(exported, name).toContain(name);
  });
});

describe('the Grafana dashboard', () => {
  it("matches Grafana's published schema types (@grafana/schema), and a broken one does not", () => {
    const dir = join(ROOT, 'test-artifacts/grafana');
    expect(grafanaTypeErrors(grafana, dir)).toEqual([]);
    const broken = structuredClone(grafana) as { panels: Panel[]; refrsh?: string };
    broken.refrsh = '1m';
    const stat = broken.panels.find((p) => p.type === 'stat') as Panel & {
      options: { colorMode: string };
    };
    stat.options.colorMode = 'rainbow';
    const errors = grafanaTypeErrors(broken, dir);
    expect(errors).toHaveLength(2);
    expect(errors.join('\n')).toMatch(/'"refrsh"' does not exist/);
    expect(errors.join('\n')).toMatch(/'"rainbow"' is not assignable/);
  });

  it('every query names metrics the product serves, in valid PromQL', async () => {
    expect(queries.length).toBeGreaterThan(10);
    for (const q of queries) {
      const names = metricsIn(q.expr);
      expect(names.length, `${q.panel}: ${q.expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${q.panel}: ${name}`).toContain(name);
    }
    // promtool parses each as a recording rule ($__rate_interval is Grafana's, filled in here).
    const dir = mkdtempSync(join(tmpdir(), 'grafana-'));
    const asRules = queries.map((q, i) => ({
      record: `grafana:query_${i}`,
      expr: q.expr.replaceAll('$__rate_interval', '2m'),
    }));
    writeFileSync(join(dir, 'q.yml'), stringify({ groups: [{ name: 'q', rules: asRules }] }));
    const { stdout } = await run('promtool', ['check', 'rules', join(dir, 'q.yml')]);
    expect(stdout).toMatch(`SUCCESS: ${queries.length} rules found`);
  });

  it('shows what an operator needs, from the chosen Prometheus data source', () => {
    const used = new Set(queries.flatMap((q) => metricsIn(q.expr)));
    for (const name of [
      'audit_sweeper_backlog_rows',
      'audit_sweeper_oldest_incomplete_age_seconds',
      'audit_sweeper_rows_finalized_total',
      'audit_sweeper_partition_sweep_duration_seconds_bucket',
      'audit_sweeper_throttled_workers',
      'audit_sweeper_throttled_seconds_total',
      'audit_sweeper_paused',
      'audit_sweeper_worker_heartbeat_timestamp_seconds',
      'audit_sweeper_connection_errors_total',
      'audit_sweeper_store_up',
    ])
      expect(used, name).toContain(name);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    // Grafana's variable syntax, not a template string: the data source the importer picks.
    const chosen = '$' + '{datasource}';
    for (const p of panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource?.uid, p.title).toBe(chosen);
      for (const t of p.targets ?? []) expect(t.datasource?.uid, p.title).toBe(chosen);
    }
  });
});
