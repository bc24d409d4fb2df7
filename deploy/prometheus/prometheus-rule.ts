import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

/**
 * The alert rules for the Prometheus Operator: the groups of audit-sweeper.rules.yml, unchanged,
 * inside a PrometheusRule. One source: `npm run generate:prometheus-rule` writes the resource,
 * and test/prometheus-rules.test.ts fails when the committed one differs from what this makes.
 */
export const RULES_FILE = 'deploy/prometheus/audit-sweeper.rules.yml';
export const PROMETHEUS_RULE_FILE = 'deploy/kubernetes/components/monitoring/prometheus-rule.yaml';

export function prometheusRule(rulesYaml: string): string {
  const { groups } = parse(rulesYaml) as { groups: unknown[] };
  const resource = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'audit-sweeper',
      labels: { 'app.kubernetes.io/name': 'audit-sweeper' },
    },
    spec: { groups },
  };
  return `# Generated from ${RULES_FILE} by \`npm run generate:prometheus-rule\`: edit that file.\n${stringify(resource, { lineWidth: 0 })}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  writeFileSync(
    `${root}${PROMETHEUS_RULE_FILE}`,
    prometheusRule(readFileSync(`${root}${RULES_FILE}`, 'utf8')),
  );
}
