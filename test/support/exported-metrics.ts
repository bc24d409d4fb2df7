import { type Dashboard, startDashboardWithWorker } from './dashboard-harness.ts';

/**
 * The metric names a real dashboard and a real worker serve, for checking that a query (an alert
 * rule, a Grafana panel) names nothing the product does not export: the dashboard's /metrics over
 * HTTP and a worker's registry, with a live worker so that per-worker series exist. A histogram
 * counts with its _bucket, _sum and _count series.
 */
export async function scrapeExportedMetrics(label: string): Promise<{
  names: Set<string>;
  dashboard: Dashboard;
}> {
  const dashboard = await startDashboardWithWorker(label);
  const texts = [
    await (await dashboard.get('/metrics')).text(),
    await dashboard.worker.metrics.registry.metrics(),
  ];
  const names = new Set<string>();
  for (const text of texts)
    for (const line of text.split('\n')) {
      const name = /^(?:# TYPE )?([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)?.[1];
      if (name && !line.startsWith('# HELP')) names.add(name);
    }
  return { names, dashboard };
}

/** The audit_sweeper_* metric names a PromQL expression reads (recording rules' names aside). */
export const metricsIn = (expr: string) =>
  [...expr.matchAll(/\b(audit_sweeper_[a-z0-9_]+)\b/g)].map((m) => m[1] as string);
