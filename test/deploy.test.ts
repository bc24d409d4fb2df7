import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { DRAIN_TIMEOUT_MS } from '../src/cli/lifecycle.ts';
import { parseSimulateOptions } from '../src/cli/simulate-options.ts';
import { shutdownTimeoutMs } from '../src/cli/worker.ts';
import { type Config, ConfigError, loadConfig, SETTINGS } from '../src/config.ts';
import { parseDuration } from '../src/duration.ts';

/**
 * The deployment files must agree with the code: every variable they set is a setting the code
 * reads, with a value it accepts; probes and ports are the ones the processes listen on; and
 * shutdown gets more time than a sweep needs to let go of its lock.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const K8S = join(ROOT, 'deploy/kubernetes');
const HEALTHCHECK = 'deploy/docker/healthcheck.mjs';
const run = promisify(execFile);

const SETTING_NAMES = new Set(Object.keys(SETTINGS));
/** Read by the image itself (its health check), not by the application: see healthcheck.mjs. */
const IMAGE_VARIABLES = new Set(['HEALTHCHECK_PORT', 'HEALTHCHECK_PATH']);

const defaultOf = (name: keyof typeof SETTINGS) => SETTINGS[name].default as string;
const WORKER_PORT = Number(defaultOf('WORKER_METRICS_PORT'));
const DASHBOARD_PORT = Number(defaultOf('DASHBOARD_PORT'));
/** Time for a process to exit after its own shutdown limit, before it is killed. */
const EXIT_MARGIN_MS = 5_000;

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is checked field by field below.
type Doc = any;

/** A probe's or Service's port, by name or number, as the container's port number. */
const portNumber = (container: Doc, port: string | number) =>
  typeof port === 'number'
    ? port
    : container.ports.find((p: Doc) => p.name === port)?.containerPort;

/** Whether a label selector (matchLabels only, as these files use) selects these labels. */
const selects = (selector: Doc, labels: Record<string, string>) =>
  Object.keys(selector.matchLabels ?? {}).length > 0 &&
  Object.entries(selector.matchLabels).every(([k, v]) => labels[k] === v);

/** The environment a container ends up with must be one the program accepts. */
function expectValidConfig(env: Record<string, string>, where: string): Config {
  for (const name of Object.keys(env)) {
    expect(
      SETTING_NAMES.has(name) || IMAGE_VARIABLES.has(name),
      `${where}: ${name} is not a setting`,
    ).toBe(true);
  }
  try {
    return loadConfig(env);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
}

describe('docker-compose.yml', () => {
  let compose: Doc;

  beforeAll(async () => {
    // A clean environment, so the file's own defaults are what is checked.
    const { stdout } = await run(
      'docker-compose',
      ['-f', 'docker-compose.yml', '--profile', 'demo', 'config'],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    compose = parse(stdout);
  });

  it('is valid for docker-compose, and the validation does reject a broken file', async () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      ['dashboard', 'migrate', 'postgres', 'redis', 'simulate', 'worker'].sort(),
    );
    const dir = mkdtempSync(join(tmpdir(), 'compose-'));
    const broken = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8').replace(
      'condition: service_completed_successfully',
      'condition: service_finished_somehow',
    );
    writeFileSync(join(dir, 'docker-compose.yml'), broken);
    await expect(
      run('docker-compose', ['-f', join(dir, 'docker-compose.yml'), 'config', '-q'], { cwd: dir }),
    ).rejects.toThrow();
  });

  it('postgres 15 and redis 7 (noeviction, append-only) with health checks', () => {
    const { postgres, redis } = compose.services;
    expect(postgres.image).toBe('postgres:15');
    expect(postgres.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(redis.image).toBe('redis:7');
    const cmd = redis.command.join(' ');
    expect(cmd).toContain('--maxmemory-policy noeviction');
    expect(cmd).toContain('--appendonly yes');
    expect(redis.healthcheck.test.join(' ')).toContain('redis-cli ping');
  });

  it('migrate runs once after postgres is healthy; workers and dashboard after it succeeded', () => {
    const { migrate, worker, dashboard, simulate } = compose.services;
    expect(migrate.command).toEqual(['migrate']);
    expect(migrate.restart).toBe('no');
    expect(migrate.depends_on.postgres.condition).toBe('service_healthy');
    for (const s of [worker, dashboard, simulate]) {
      expect(s.depends_on.migrate.condition).toBe('service_completed_successfully');
    }
    expect(worker.depends_on.redis.condition).toBe('service_healthy');
    expect(dashboard.depends_on.redis.condition).toBe('service_healthy');
  });

  it("three workers, given longer to stop than the worker's own shutdown limit", () => {
    const { worker } = compose.services;
    expect(worker.command).toEqual(['worker']);
    expect(worker.deploy.replicas).toBe(3);
    expect(worker.ports).toBeUndefined(); // replicas cannot share a host port
    const grace = parseDuration(worker.stop_grace_period) as number;
    const config = expectValidConfig(worker.environment, 'compose worker');
    // The code's own limit (2 x SWEEP_LOCK_TTL + 10s) with the file's SWEEP_LOCK_TTL: Docker
    // must not kill a worker that is still handing its partition over.
    expect(grace).toBeGreaterThanOrEqual(shutdownTimeoutMs(config) + EXIT_MARGIN_MS);
    expect(config.WORKER_METRICS_PORT).toBe(WORKER_PORT);
    // The image's health check falls back to WORKER_METRICS_PORT for workers.
    expect(worker.environment.HEALTHCHECK_PORT).toBeUndefined();
  });

  it('the dashboard is published on 3000, the port it listens on and health-checks', () => {
    const { dashboard } = compose.services;
    expect(dashboard.command).toEqual(['dashboard']);
    const config = expectValidConfig(dashboard.environment, 'compose dashboard');
    expect(config.DASHBOARD_PORT).toBe(DASHBOARD_PORT);
    expect(dashboard.ports).toContainEqual(
      expect.objectContaining({ published: 3000, target: config.DASHBOARD_PORT }),
    );
    expect(Number(dashboard.environment.HEALTHCHECK_PORT)).toBe(config.DASHBOARD_PORT);
    // No password in the file: unset, the dashboard makes one up rather than run open.
    expect(config.DASHBOARD_PASSWORD).toBeUndefined();
  });

  it('simulate is optional (profile demo) and its options are valid', () => {
    const { simulate } = compose.services;
    expect(simulate.profiles).toEqual(['demo']);
    const [verb, ...args] = simulate.command;
    expect(verb).toBe('simulate');
    expect(typeof parseSimulateOptions(args), String(parseSimulateOptions(args))).toBe('object');
  });

  it('every application service sets only real settings, with values the code accepts', () => {
    const app = Object.entries(compose.services as Record<string, Doc>).filter(
      ([, s]) => s.image === 'audit-sweeper:local',
    );
    expect(app.map(([n]) => n).sort()).toEqual(['dashboard', 'migrate', 'simulate', 'worker']);
    for (const [name, s] of app) {
      expect(s.build, name).toBeDefined();
      const config = expectValidConfig(s.environment, `compose ${name}`);
      expect(new URL(config.DATABASE_URL).hostname).toBe('postgres');
      expect(new URL(config.REDIS_URL).hostname).toBe('redis');
    }
  });
});

/** The YAML files of a kustomization folder, every document of each, and a lookup by kind and name. */
function manifests(dir: string) {
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  const docs: Doc[] = files.flatMap((f) =>
    parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => {
      if (d.errors.length) throw new Error(`${f}: ${d.errors[0]?.message}`);
      return { ...d.toJS(), __file: f };
    }),
  );
  const find = (kind: string, name: string) => {
    const doc = docs.find((d) => d.kind === kind && d.metadata?.name === name);
    if (!doc) throw new Error(`no ${kind} ${name}`);
    return doc;
  };
  return { files, docs, find };
}

describe('deploy/kubernetes', () => {
  const { files, find } = manifests(K8S);
  const configMap = find('ConfigMap', 'audit-sweeper-config');
  const secret = find('Secret', 'audit-sweeper-credentials');
  const worker = find('Deployment', 'audit-sweeper-worker');
  const dashboard = find('Deployment', 'audit-sweeper-dashboard');
  const service = find('Service', 'audit-sweeper-dashboard');
  const job = find('Job', 'audit-sweeper-migrate');
  const workloads = [worker, dashboard, job];

  /**
   * The Secret as a deploy must fill it: its placeholder password is refused at start (checked
   * below), so the settings are checked with a real one in its place.
   */
  const filledSecret = { ...secret.stringData, DASHBOARD_PASSWORD: 'a-real-password-1234' };
  const settings: Record<string, string> = { ...configMap.data, ...filledSecret };

  /** What a container's environment resolves to, following its ConfigMap and Secret refs. */
  function containerEnv(container: Doc, where: string): Record<string, string> {
    const env: Record<string, string> = {};
    for (const from of container.envFrom ?? []) {
      if (from.configMapRef) {
        expect(from.configMapRef.name, where).toBe(configMap.metadata.name);
        Object.assign(env, configMap.data);
      } else {
        expect(from.secretRef?.name, where).toBe(secret.metadata.name);
        Object.assign(env, filledSecret);
      }
    }
    for (const e of container.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
      if (ref) {
        const source = e.valueFrom.secretKeyRef ? filledSecret : configMap.data;
        const owner = e.valueFrom.secretKeyRef ? secret : configMap;
        expect(ref.name, `${where} ${e.name}`).toBe(owner.metadata.name);
        // An optional key (the reader's password) may be left out of the Secret.
        if (ref.optional === true && !(ref.key in source)) {
          expect(SETTING_NAMES, `${where} ${e.name}`).toContain(ref.key);
          continue;
        }
        expect(Object.keys(source), `${where} ${e.name}`).toContain(ref.key);
        env[e.name] = source[ref.key];
      } else {
        env[e.name] = String(e.value);
      }
    }
    return env;
  }

  const podOf = (w: Doc) => w.spec.template.spec;
  const only = (w: Doc) => {
    expect(podOf(w).containers).toHaveLength(1);
    return podOf(w).containers[0];
  };

  it('kustomization.yaml lists every manifest, and each exists', () => {
    const k = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'));
    expect([...k.resources].sort()).toEqual(files.filter((f) => f !== 'kustomization.yaml').sort());
    const images = new Set(k.images.map((i: Doc) => i.name));
    for (const w of workloads) expect(images.has(only(w).image.split(':')[0])).toBe(true);
  });

  it('the ConfigMap and Secret hold only real settings, with values the code accepts', () => {
    for (const name of Object.keys(configMap.data)) expect(SETTING_NAMES, name).toContain(name);
    expect(Object.keys(secret.stringData).sort()).toEqual([
      'DASHBOARD_PASSWORD',
      'DATABASE_URL',
      'REDIS_URL',
    ]);
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'DASHBOARD_PASSWORD']) {
      expect(configMap.data[name], `${name} belongs in the Secret`).toBeUndefined();
    }
    expectValidConfig(settings, 'ConfigMap + Secret');
  });

  it("the Secret's placeholder dashboard password is refused at start, naming the setting", () => {
    const placeholder = secret.stringData.DASHBOARD_PASSWORD;
    let error: unknown;
    try {
      loadConfig({ ...configMap.data, ...secret.stringData });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('DASHBOARD_PASSWORD');
    expect((error as ConfigError).message).toMatch(/placeholder/);
    expect((error as ConfigError).message).not.toContain(placeholder);
  });

  it('every container sets only real settings, resolved from the ConfigMap and Secret', () => {
    for (const w of workloads) {
      const where = `${w.kind} ${w.metadata.name}`;
      const env = containerEnv(only(w), where);
      expectValidConfig(env, where);
      expect(env.DATABASE_URL, where).toBe(secret.stringData.DATABASE_URL);
      const pod = podOf(w);
      expect(pod.securityContext.runAsNonRoot, where).toBe(true);
      expect(pod.securityContext.runAsUser, where).not.toBe(0);
      expect(only(w).securityContext.allowPrivilegeEscalation, where).toBe(false);
    }
  });

  it('workers: 3 replicas, probes and scraping on WORKER_METRICS_PORT, a long enough grace', () => {
    expect(worker.spec.replicas).toBe(3);
    const c = only(worker);
    expect(c.args).toEqual(['worker']);
    const config = expectValidConfig(containerEnv(c, 'worker'), 'worker');
    const metrics = c.ports.find((p: Doc) => p.name === 'metrics');
    expect(metrics.containerPort).toBe(WORKER_PORT);
    expect(config.WORKER_METRICS_PORT).toBe(WORKER_PORT);
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(portNumber(c, c.readinessProbe.httpGet.port)).toBe(WORKER_PORT);
    expect(portNumber(c, c.livenessProbe.httpGet.port)).toBe(WORKER_PORT);
    const annotations = worker.spec.template.metadata.annotations;
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(Number(annotations['prometheus.io/port'])).toBe(WORKER_PORT);
    expect(annotations['prometheus.io/path']).toBe('/metrics');
    // The code's own shutdown limit (2 x SWEEP_LOCK_TTL + 10s) with the ConfigMap's lock TTL:
    // Kubernetes must not SIGKILL a worker that is still handing its partition over.
    const graceMs = podOf(worker).terminationGracePeriodSeconds * 1000;
    expect(graceMs).toBeGreaterThanOrEqual(shutdownTimeoutMs(config) + EXIT_MARGIN_MS);
    expect(shutdownTimeoutMs(config)).toBe(2 * config.SWEEP_LOCK_TTL + 10_000);
  });

  it('dashboard: probes on DASHBOARD_PORT, a Service that reaches it, the password from the Secret', () => {
    const c = only(dashboard);
    expect(c.args).toEqual(['dashboard']);
    const env = containerEnv(c, 'dashboard');
    const config = expectValidConfig(env, 'dashboard');
    expect(config.DASHBOARD_PORT).toBe(DASHBOARD_PORT);
    expect(config.DASHBOARD_PASSWORD).toBe(filledSecret.DASHBOARD_PASSWORD);
    // Requests in flight at SIGTERM get DRAIN_TIMEOUT_MS to finish before the pod is killed.
    expect(podOf(dashboard).terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(
      DRAIN_TIMEOUT_MS + EXIT_MARGIN_MS,
    );
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(portNumber(c, c.readinessProbe.httpGet.port)).toBe(DASHBOARD_PORT);
    expect(portNumber(c, c.livenessProbe.httpGet.port)).toBe(DASHBOARD_PORT);
    const labels = dashboard.spec.template.metadata.labels;
    expect(dashboard.spec.selector.matchLabels).toEqual(labels);
    expect(service.spec.selector).toEqual(labels);
    expect(service.spec.ports).toHaveLength(1);
    expect(service.spec.ports[0].port).toBe(DASHBOARD_PORT);
    expect(portNumber(c, service.spec.ports[0].targetPort)).toBe(DASHBOARD_PORT);
  });

  it('migrate: a Job that runs the migrate verb and retries on failure', () => {
    const c = only(job);
    expect(c.args).toEqual(['migrate']);
    expect(['OnFailure', 'Never']).toContain(podOf(job).restartPolicy);
    expect(job.spec.backoffLimit).toBeGreaterThan(0);
  });

  it('a PodDisruptionBudget keeps all workers but one through a drain', () => {
    const pdb = find('PodDisruptionBudget', 'audit-sweeper-worker');
    const labels = worker.spec.template.metadata.labels;
    expect(selects(pdb.spec.selector, labels)).toBe(true);
    expect(selects(pdb.spec.selector, dashboard.spec.template.metadata.labels)).toBe(false);
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.maxUnavailable).toBeLessThan(worker.spec.replicas);
  });

  it("a NetworkPolicy admits the workers' unauthenticated port only from the monitoring namespace", () => {
    const policy = find('NetworkPolicy', 'audit-sweeper-worker');
    expect(selects(policy.spec.podSelector, worker.spec.template.metadata.labels)).toBe(true);
    expect(selects(policy.spec.podSelector, dashboard.spec.template.metadata.labels)).toBe(false);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toHaveLength(1);
    const [rule] = policy.spec.ingress;
    expect(rule.from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
    expect(rule.ports).toHaveLength(1);
    expect(rule.ports[0].protocol).toBe('TCP');
    expect(portNumber(only(worker), rule.ports[0].port)).toBe(WORKER_PORT);
  });
});

describe('deploy/kubernetes/components/monitoring (for the Prometheus Operator)', () => {
  const base = manifests(K8S);
  const { files, docs, find } = manifests(join(K8S, 'components/monitoring'));
  const podLabels = (name: string) =>
    base.find('Deployment', name).spec.template.metadata.labels as Record<string, string>;
  const workerPod = base.find('Deployment', 'audit-sweeper-worker').spec.template.spec;
  const services = [
    base.find('Service', 'audit-sweeper-dashboard'),
    find('Service', 'audit-sweeper-worker-metrics'),
  ];

  it('is a kustomize Component listing each of its files, off by default', () => {
    const k = parse(readFileSync(join(K8S, 'components/monitoring/kustomization.yaml'), 'utf8'));
    expect(k.kind).toBe('Component');
    expect([...k.resources].sort()).toEqual(files.filter((f) => f !== 'kustomization.yaml').sort());
    const baseK = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'));
    expect(baseK.components).toBeUndefined();
  });

  it("a headless Service reaches every worker's metrics port", () => {
    const svc = find('Service', 'audit-sweeper-worker-metrics');
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.selector).toEqual(podLabels('audit-sweeper-worker'));
    const [port] = svc.spec.ports;
    const container = workerPod.containers[0];
    expect(portNumber(container, port.targetPort)).toBe(WORKER_PORT);
  });

  it('ServiceMonitors scrape the workers and the dashboard, the dashboard with its credentials', () => {
    const monitors = docs.filter((d) => d.kind === 'ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual([
      'audit-sweeper-dashboard',
      'audit-sweeper-worker',
    ]);
    for (const m of monitors) {
      const selected = services.filter((svc) => selects(m.spec.selector, svc.metadata.labels));
      expect(selected, m.metadata.name).toHaveLength(1);
      const svc = selected[0];
      // The job label is the Service's name: the alert rules' up{job=~"audit-sweeper.*"}.
      expect(svc.metadata.name).toMatch(/^audit-sweeper/);
      for (const e of m.spec.endpoints) {
        expect(
          svc.spec.ports.map((p: Doc) => p.name),
          m.metadata.name,
        ).toContain(e.port);
        expect(e.path).toBe('/metrics');
      }
    }
    const auth = find('ServiceMonitor', 'audit-sweeper-dashboard').spec.endpoints[0].basicAuth;
    const credentials = base.find('Secret', 'audit-sweeper-credentials');
    expect(auth.password).toEqual({ name: credentials.metadata.name, key: 'DASHBOARD_PASSWORD' });
    const user = find('Secret', auth.username.name).stringData[auth.username.key];
    expect(user).toBe(base.find('ConfigMap', 'audit-sweeper-config').data.DASHBOARD_USER);
    expect(
      find('ServiceMonitor', 'audit-sweeper-worker').spec.endpoints[0].basicAuth,
    ).toBeUndefined();
  });

  it('carries the alert rules as a PrometheusRule', () => {
    const rule = find('PrometheusRule', 'audit-sweeper');
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.spec.groups.length).toBeGreaterThan(0);
  });
});

describe('Dockerfile', () => {
  // Instructions, with continuation lines joined and comments dropped.
  const instructions = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op = '', ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), arg: rest.join(' ') };
    });
  const lastFrom = instructions.map((i) => i.op).lastIndexOf('FROM');
  const build = instructions.slice(0, lastFrom);
  const runtime = instructions.slice(lastFrom);
  const args = (op: string, list = runtime) => list.filter((i) => i.op === op).map((i) => i.arg);

  it('is multi-stage: builds with dev dependencies, ships production ones only', () => {
    expect(args('FROM', instructions).length).toBeGreaterThanOrEqual(2);
    expect(args('RUN', build).join('\n')).toMatch(/npm ci\b/);
    expect(args('RUN', build).join('\n')).toContain('npm run build');
    expect(args('RUN').join('\n')).toMatch(/npm ci --omit=dev --ignore-scripts/);
    expect(args('COPY').join('\n')).toMatch(/--from=build \/app\/dist/);
  });

  it('runs a long-term-support Node line, while engines still allow Node 20 for development', () => {
    const image = args('ARG', instructions).find((a) => a.startsWith('NODE_IMAGE='));
    const major = Number(/^NODE_IMAGE=node:(\d+)-/.exec(image ?? '')?.[1]);
    // Even majors become LTS (Node 20's support ended 2026-04-30); 24 is the oldest still in it.
    expect(major % 2, String(image)).toBe(0);
    expect(major).toBeGreaterThanOrEqual(24);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.engines.node).toMatch(/^>=20\.\d+$/);
  });

  it('runs as a non-root user', () => {
    const users = args('USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    // And switches to it before the process starts, after every COPY and RUN.
    const userAt = runtime.map((i) => i.op).lastIndexOf('USER');
    expect(runtime.slice(userAt).some((i) => i.op === 'RUN' || i.op === 'COPY')).toBe(false);
  });

  it('has a HEALTHCHECK whose script is in the image, and the CLI as entrypoint', () => {
    const [healthcheck] = args('HEALTHCHECK');
    expect(healthcheck).toBeDefined();
    expect(healthcheck).toContain(HEALTHCHECK);
    expect(existsSync(join(ROOT, HEALTHCHECK))).toBe(true);
    expect(args('COPY').join('\n')).toContain(HEALTHCHECK);
    expect(JSON.parse(args('ENTRYPOINT')[0] as string)).toEqual(['node', 'bin/audit-sweeper.js']);
    expect(args('COPY').join('\n')).toMatch(/\bbin\b/);
    expect(args('EXPOSE').join(' ').split(/\s+/).map(Number)).toEqual(
      expect.arrayContaining([WORKER_PORT, DASHBOARD_PORT]),
    );
  });

  it('.dockerignore keeps node_modules, dist and .git out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', 'dist', '.git']) expect(ignored).toContain(entry);
    // ... but not what the build needs.
    for (const needed of ['src', 'bin', 'deploy/docker', 'package.json']) {
      expect(ignored).not.toContain(needed);
    }
  });
});

describe('the image health check script', () => {
  const source = readFileSync(join(ROOT, HEALTHCHECK), 'utf8');

  async function check(env: Record<string, string>): Promise<number> {
    const child = spawn(process.execPath, [HEALTHCHECK], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: 'ignore',
    });
    const [code] = await once(child, 'exit');
    return code as number;
  }

  async function server(status: number) {
    const paths: string[] = [];
    const s = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(req.url === '/healthz' ? status : 404).end();
    });
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    return {
      port: String((s.address() as AddressInfo).port),
      paths,
      close: () => new Promise<void>((resolve) => s.close(() => resolve())),
    };
  }

  it('reads only the variables the tests allow for the image', () => {
    const read = new Set([...source.matchAll(/process\.env\.(\w+)/g)].map((m) => m[1]));
    for (const name of read) {
      expect(SETTING_NAMES.has(name as string) || IMAGE_VARIABLES.has(name as string), name).toBe(
        true,
      );
    }
    for (const name of IMAGE_VARIABLES) expect(read).toContain(name);
  });

  it('passes on 200 from /healthz; fails on 503, and when nothing listens', async () => {
    const up = await server(200);
    try {
      expect(await check({ HEALTHCHECK_PORT: up.port })).toBe(0);
      // A worker container sets no HEALTHCHECK_PORT: its WORKER_METRICS_PORT is used.
      expect(await check({ WORKER_METRICS_PORT: up.port })).toBe(0);
      expect(up.paths).toEqual(['/healthz', '/healthz']);
      expect(await check({ HEALTHCHECK_PORT: up.port, HEALTHCHECK_PATH: '/nope' })).toBe(1);
    } finally {
      await up.close();
    }
    const down = await server(503);
    try {
      expect(await check({ HEALTHCHECK_PORT: down.port })).toBe(1);
    } finally {
      await down.close();
    }
    const gone = await server(200);
    await gone.close();
    expect(await check({ HEALTHCHECK_PORT: gone.port })).toBe(1);
  });
});
