import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { seed, tagged } from '../support/seed.ts';
import { ensureDockerEngine } from './engine.ts';
import {
  type Container,
  composeFor,
  dashboardClient,
  docker,
  inspect,
  labelled,
  ROOT,
  seconds,
  sh,
} from './stack.ts';
import { waitFor } from './wait.ts';

/**
 * The image and the compose stack, built and run for real, the way a user does: the offline base
 * images (this machine reaches no image registry), `docker build .`, `docker-compose up -d
 * --build`, Sweep now, the demo traffic, scaling, a killed worker, a stop mid-drain, the image
 * run as the Kubernetes manifests run it, and `docker-compose down -v`. `npm run test:docker`.
 */

const engine = await ensureDockerEngine();
if (!engine.ok) {
  console.warn(`\ndocker test SKIPPED: ${engine.reason}\n`);
}

const PROJECT = 'audit-sweeper-docker-test';
const HARDENED = [`${PROJECT}-k8s-worker`, `${PROJECT}-k8s-dashboard`];
/** The label the Dockerfile puts on both its stages. */
const IMAGE_LABEL = 'org.opencontainers.image.title=audit-sweeper';
/** The Node base image the Dockerfile names (build-offline-bases.sh reads the same line). */
const NODE_IMAGE =
  /^ARG NODE_IMAGE=(\S+)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1] ?? '';
const NODE_MAJOR = /^node:(\d+)-/.exec(NODE_IMAGE)?.[1];
const PASSWORD = randomBytes(12).toString('hex');
/** A free host port for the dashboard, so nothing else on the machine is in the way. */
const PORT = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => resolve(port));
  });
});
// What a user would put in .env: sweeps only when asked (so each drain below is one Sweep now),
// a short cutoff so the demo's crashed operations become stale quickly, and a short lock TTL so a
// killed worker's partitions are taken over in seconds rather than a minute.
const { compose, containers } = composeFor(PROJECT, {
  DASHBOARD_PASSWORD: PASSWORD,
  COMPOSE_DASHBOARD_PORT: String(PORT),
  STALE_AFTER: '10s',
  SWEEP_EVERY: '1h',
  SWEEP_LOCK_TTL: '5s',
  SWEEP_PARTITIONS: '16',
  SWEEP_CHUNK_SIZE: '1000',
  SIMULATE_RATE: '20',
  SIMULATE_CRASH_RATIO: '0.2',
  LOG_LEVEL: 'info',
  DOCKER_BUILDKIT: '0',
});
const dash = dashboardClient(`http://127.0.0.1:${PORT}`, 'admin', PASSWORD);

const figures: Record<string, string | number> = {};
function figure(name: string, value: string | number) {
  figures[name] = value;
  console.log(`docker figure: ${name}: ${value}`);
}

async function removeEverything() {
  await docker('rm', '-f', '-v', ...HARDENED).catch(() => undefined);
  await compose('--profile', 'demo', 'down', '-v', '--remove-orphans', '--timeout', '60');
}

const byService = (list: Container[], service: string) => list.filter((c) => c.service === service);

describe.skipIf(!engine.ok)(
  `the Docker image and compose stack (engine ${engine.ok && engine.version})`,
  () => {
    let db: pg.Pool | undefined;

    afterAll(async () => {
      await db?.end();
      await removeEverything();
      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      writeFileSync(
        join(ROOT, 'test-artifacts/docker-figures.json'),
        JSON.stringify(figures, null, 2),
      );
    });

    /** Rows of a seeded tag still incomplete, and finalized by the sweeper. */
    async function countTag(tag: string) {
      const { rows } = await (db as pg.Pool).query(
        `SELECT count(*) FILTER (WHERE time_completed IS NULL)::int AS incomplete,
              count(*) FILTER (WHERE result_kind = 'timeout')::int AS timed_out
         FROM audit_log WHERE request_id LIKE $1`,
        [tagged(tag)],
      );
      return rows[0] as { incomplete: number; timed_out: number };
    }

    it('builds the offline stand-ins for the base images (kept between runs)', async () => {
      await removeEverything(); // whatever an interrupted run left
      const started = Date.now();
      await sh('deploy/docker/build-offline-bases.sh', []);
      figure('base images ready', seconds(Date.now() - started));
      expect(NODE_MAJOR, `Dockerfile's NODE_IMAGE ${NODE_IMAGE}`).toBeDefined();
      for (const image of [NODE_IMAGE, 'postgres:15', 'redis:7']) {
        expect(await docker('image', 'inspect', '-f', '{{.Id}}', image)).toMatch(/^sha256:/);
      }
      const nodeUser = await docker('run', '--rm', NODE_IMAGE, 'id', '-u', 'node');
      expect(nodeUser.trim()).toBe('1000');
    });

    it('docker build . builds the image with the classic builder', async () => {
      const started = Date.now();
      await sh('docker', ['build', '-q', '-t', 'audit-sweeper:local', '.'], {
        ...process.env,
        DOCKER_BUILDKIT: '0',
      });
      figure('docker build (cached layers reused)', seconds(Date.now() - started));
      // Keep the build stage as the next run's cache (tagged, so never dangling), and drop what
      // earlier builds of other sources left: untagged images of this Dockerfile.
      await sh(
        'docker',
        ['build', '-q', '--target', 'build', '-t', 'audit-sweeper:build-cache', '.'],
        {
          ...process.env,
          DOCKER_BUILDKIT: '0',
        },
      );
      await docker('image', 'prune', '-f', '--filter', `label=${IMAGE_LABEL}`);
      const size = Number(
        await docker('image', 'inspect', '-f', '{{.Size}}', 'audit-sweeper:local'),
      );
      const base = Number(await docker('image', 'inspect', '-f', '{{.Size}}', NODE_IMAGE));
      figure('image size', `${Math.round(size / 1e6)} MB`);
      figure('image size above its base', `${Math.round((size - base) / 1e6)} MB`);
      const user = await docker(
        'image',
        'inspect',
        '-f',
        '{{.Config.User}}',
        'audit-sweeper:local',
      );
      expect(user.trim()).toBe('node');
      // The runtime is the Node line the Dockerfile names (a supported LTS), not the host's.
      const version = await docker(
        'run',
        '--rm',
        '--entrypoint',
        'node',
        'audit-sweeper:local',
        '--version',
      );
      figure('Node in the image', version.trim());
      expect(version.trim()).toMatch(new RegExp(`^v${NODE_MAJOR}\\.`));
    });

    it('docker-compose up -d --build: everything healthy, the dashboard behind its password', async () => {
      const started = Date.now();
      await compose('up', '-d', '--build');
      const all = await waitFor(
        'postgres, redis, 3 workers and the dashboard healthy, migrate exited 0',
        async () => {
          const list = await containers();
          const healthy = (s: string) => byService(list, s).filter((c) => c.health === 'healthy');
          const migrate = byService(list, 'migrate');
          const ok =
            healthy('postgres').length === 1 &&
            healthy('redis').length === 1 &&
            healthy('worker').length === 3 &&
            healthy('dashboard').length === 1 &&
            migrate.length === 1 &&
            migrate[0]?.status === 'exited';
          return ok ? list : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 1_000 },
      );
      figure('docker-compose up to all services healthy', seconds(Date.now() - started));
      expect(byService(all, 'migrate')[0]?.exitCode).toBe(0);
      expect(byService(all, 'simulate')).toHaveLength(0); // only with --profile demo

      expect((await dash.get('/api/overview', {})).status).toBe(401);
      const wrong = `Basic ${Buffer.from('admin:not-the-password').toString('base64')}`;
      expect((await dash.get('/api/overview', { authorization: wrong })).status).toBe(401);
      const overview = await dash.get('/api/overview');
      expect(overview.status).toBe(200);
      expect(((await overview.json()) as { staleAfterMs: number }).staleAfterMs).toBe(10_000);

      const postgres = byService(all, 'postgres')[0] as Container;
      db = new pg.Pool({
        connectionString: `postgres://audit:audit@${postgres.ip}:5432/audit_sweeper`,
        max: 2,
      });
      db.on('error', () => undefined); // an idle connection closed when the stack stops
    });

    it('Sweep now finalizes the rows seeded as stale, and only those', async () => {
      await seed(db as pg.Pool, {
        kind: 'incomplete',
        count: 5_000,
        tag: 'stale',
        ageMs: 3_600_000,
      });
      await seed(db as pg.Pool, { kind: 'incomplete', count: 100, tag: 'fresh', ageMs: 0 });
      const state = await dash.sweepDone(await dash.sweepNow());
      expect(state.summary?.failedPartitions).toEqual([]);
      expect(state.summary?.finalized).toBe(5_000);
      expect(await countTag('stale')).toEqual({ incomplete: 0, timed_out: 5_000 });
      expect(await countTag('fresh')).toEqual({ incomplete: 100, timed_out: 0 });
      await (db as pg.Pool).query(`DELETE FROM audit_log WHERE request_id LIKE 'fresh-%'`);
    });

    it('the demo profile simulates traffic whose crashed operations come back as unknown', async () => {
      // Entries finalized from here on: the seeded ones above were finalized before.
      const since = new Date().toISOString();
      await compose('--profile', 'demo', 'up', '-d', 'simulate');
      await waitFor(
        'simulated operations in the log',
        async () =>
          (await (db as pg.Pool).query(`SELECT count(*)::int AS n FROM audit_log`)).rows[0].n >
          5_200,
        { timeoutMs: 60_000 },
      );
      // The crashed ones are stale after STALE_AFTER (10s); the API lists an entry once it has
      // been completed for LIST_SAFETY_MARGIN (30s). Sweep now until unknown entries show up.
      const unknown = await waitFor(
        'unknown entries through /v1/audit-log',
        async () => {
          await dash.sweepDone(await dash.sweepNow());
          const res = await dash.get(
            `/v1/audit-log?start_time=${since}&sort=descending&limit=1000`,
          );
          expect(res.status).toBe(200);
          type Item = { id: string; request_id: string; result: { kind: string } };
          const { items } = (await res.json()) as { items: Item[] };
          const found = items.filter((i) => i.result.kind === 'unknown');
          expect(found.filter((i) => i.request_id.startsWith('stale-'))).toEqual([]);
          return found.length > 0 ? found : undefined;
        },
        { timeoutMs: 150_000, intervalMs: 5_000 },
      );
      const { rows } = await (db as pg.Pool).query(
        `SELECT count(*)::int AS n FROM audit_log WHERE id = ANY($1::uuid[]) AND result_kind = 'timeout'`,
        [unknown.map((i) => i.id)],
      );
      expect(rows[0].n).toBe(unknown.length);
      await compose('--profile', 'demo', 'stop', 'simulate');
      const [simulate] = await containers('simulate');
      expect(simulate?.exitCode).toBe(0); // stops starting operations, waits for those in flight
      figure('unknown entries listed after the demo', unknown.length);
    });

    it('--scale worker=5 drains a backlog, and one worker killed mid-drain loses nothing', async () => {
      await compose('up', '-d', '--scale', 'worker=5');
      await waitFor(
        '5 healthy workers',
        async () => (await containers('worker')).filter((c) => c.health === 'healthy').length === 5,
        { timeoutMs: 120_000, intervalMs: 1_000 },
      );

      await seed(db as pg.Pool, {
        kind: 'incomplete',
        count: 100_000,
        tag: 'drain',
        ageMs: 3_600_000,
      });
      const started = Date.now();
      const drained = await dash.sweepDone(await dash.sweepNow());
      figure(
        '5 workers drain 100k stale rows (Sweep now to run finished)',
        seconds(Date.now() - started),
      );
      figure(
        '5 workers drain 100k stale rows (run duration)',
        seconds(drained.summary?.durationMs ?? 0),
      );
      expect(drained.summary?.failedPartitions).toEqual([]);
      expect(await countTag('drain')).toEqual({ incomplete: 0, timed_out: 100_000 });

      await seed(db as pg.Pool, {
        kind: 'incomplete',
        count: 200_000,
        tag: 'kill',
        ageMs: 3_600_000,
      });
      const killStarted = Date.now();
      const statusUrl = await dash.sweepNow();
      const atKill = await waitFor('the drain to be under way', () => dash.sweepState(statusUrl), {
        done: (s) => (s.progress?.finalized ?? 0) > 0,
        intervalMs: 100,
      });
      const [victim] = await containers('worker');
      await docker('kill', (victim as Container).id);
      // restart: unless-stopped brings it back (or not: the drain must not depend on it).
      const [killed] = await inspect([(victim as Container).id]);
      console.log(`killed ${killed?.name}; now ${killed?.status}`);
      expect(atKill.done).toBe(false);
      expect(atKill.progress?.partitionsDone).toBeLessThan(atKill.progress?.partitions ?? 0);
      const afterKill = await dash.sweepDone(statusUrl, 240_000);
      figure('drain of 200k with a worker killed mid-drain', seconds(Date.now() - killStarted));
      expect(afterKill.summary?.failedPartitions).toEqual([]);
      expect(await countTag('kill')).toEqual({ incomplete: 0, timed_out: 200_000 });
    });

    it('docker-compose stop mid-drain: every worker exits 0 within its stop_grace_period', async () => {
      // The killed worker may have been restarted (restart: unless-stopped); all must be up.
      await compose('up', '-d', '--scale', 'worker=5');
      await waitFor(
        '5 running workers',
        async () => (await containers('worker')).filter((c) => c.status === 'running').length === 5,
        { timeoutMs: 60_000 },
      );
      await seed(db as pg.Pool, {
        kind: 'incomplete',
        count: 200_000,
        tag: 'stop',
        ageMs: 3_600_000,
      });
      const statusUrl = await dash.sweepNow();
      await waitFor('the drain to be under way', () => dash.sweepState(statusUrl), {
        done: (s) => (s.progress?.finalized ?? 0) > 0,
        intervalMs: 100,
      });
      const started = Date.now();
      await compose('stop', 'worker');
      const took = Date.now() - started;
      figure('docker-compose stop of 5 workers mid-drain', seconds(took));
      const workers = await containers('worker');
      expect(workers).toHaveLength(5);
      for (const w of workers)
        expect({ name: w.name, exit: w.exitCode }).toEqual({ name: w.name, exit: 0 });
      const grace = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')).services.worker
        .stop_grace_period as string;
      expect(took).toBeLessThan(Number.parseInt(grace, 10) * 1000);
    });

    it('the image as the Kubernetes manifests run it: read-only, no capabilities, uid 1000', async () => {
      const [postgres] = await containers('postgres');
      const network = (postgres as Container).network;
      // The ConfigMap's settings, and credentials in place of the Secret's placeholders.
      const configMap = parse(readFileSync(join(ROOT, 'deploy/kubernetes/configmap.yaml'), 'utf8'))
        .data as Record<string, string>;
      const env = {
        ...configMap,
        STALE_AFTER: '10s',
        SWEEP_EVERY: '1h',
        DATABASE_URL: 'postgres://audit:audit@postgres:5432/audit_sweeper',
        REDIS_URL: 'redis://redis:6379',
        DASHBOARD_PASSWORD: PASSWORD,
        HEALTHCHECK_PORT: configMap.DASHBOARD_PORT as string, // only for the dashboard below
      };
      const hardened = ['--read-only', '--tmpfs', '/tmp', '--cap-drop', 'ALL'];
      hardened.push('--security-opt', 'no-new-privileges', '--user', '1000', '--network', network);
      const envArgs = (names: string[]) =>
        names.flatMap((n) => ['-e', `${n}=${env[n as keyof typeof env]}`]);
      const settings = Object.keys(env).filter((n) => n !== 'HEALTHCHECK_PORT');

      // The migrate Job first: the schema is there, so it has nothing to apply, and exits 0.
      await docker(
        'run',
        '--rm',
        ...hardened,
        ...envArgs(['DATABASE_URL', 'LOG_LEVEL']),
        'audit-sweeper:local',
        'migrate',
      );
      const [workerName, dashboardName] = HARDENED as [string, string];
      await docker(
        'run',
        '-d',
        '--name',
        workerName,
        ...hardened,
        ...envArgs(settings),
        'audit-sweeper:local',
        'worker',
      );
      await docker(
        'run',
        '-d',
        '--name',
        dashboardName,
        ...hardened,
        ...envArgs([...settings, 'HEALTHCHECK_PORT']),
        'audit-sweeper:local',
        'dashboard',
      );
      const both = await waitFor(
        'the hardened worker and dashboard healthy',
        async () => {
          const list = await inspect(HARDENED);
          return list.every((c) => c.health === 'healthy') ? list : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1_000 },
      );
      for (const c of both) expect(c.readOnly).toBe(true);
      const [worker, dashboard] = both as [Container, Container];
      // The probes the manifests use, on the ports they name.
      expect(
        (await fetch(`http://${worker.ip}:${configMap.WORKER_METRICS_PORT}/readyz`)).status,
      ).toBe(200);
      expect(
        (await fetch(`http://${dashboard.ip}:${configMap.DASHBOARD_PORT}/readyz`)).status,
      ).toBe(200);

      // The hardened worker is the only one left: it finishes the drain the stopped workers left,
      // and a Sweep now asked of the hardened dashboard.
      await waitFor(
        'the stopped drain finished by the hardened worker',
        async () => {
          const { incomplete } = await countTag('stop');
          return incomplete === 0;
        },
        { timeoutMs: 180_000, intervalMs: 1_000 },
      );
      await seed(db as pg.Pool, { kind: 'incomplete', count: 2_000, tag: 'k8s', ageMs: 3_600_000 });
      const hardenedDash = dashboardClient(
        `http://${dashboard.ip}:${configMap.DASHBOARD_PORT}`,
        'admin',
        PASSWORD,
      );
      const state = await hardenedDash.sweepDone(await hardenedDash.sweepNow());
      expect(state.summary?.failedPartitions).toEqual([]);
      expect(await countTag('k8s')).toEqual({ incomplete: 0, timed_out: 2_000 });

      // Nothing written outside /tmp (a tmpfs, not part of the container's filesystem).
      for (const name of HARDENED) {
        expect(await docker('diff', name), name).toBe('');
        const logs = await sh('sh', ['-c', `docker logs ${name} 2>&1`]);
        expect(logs, name).not.toMatch(/EROFS|read-only file system|EACCES/i);
      }
      await docker('rm', '-f', '-v', ...HARDENED);
    });

    it('docker-compose down -v leaves no container, network or volume behind', async () => {
      await db?.end();
      db = undefined;
      await compose('--profile', 'demo', 'stop');
      for (const c of await containers()) {
        const { name, status, exitCode } = c;
        expect({ name, status, exitCode }).toEqual({ name, status: 'exited', exitCode: 0 });
      }
      await compose('--profile', 'demo', 'down', '-v', '--remove-orphans');
      expect(await labelled(`com.docker.compose.project=${PROJECT}`)).toEqual({
        containers: [],
        networks: [],
        volumes: [],
      });
    });
  },
);
