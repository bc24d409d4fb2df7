import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor } from './wait.ts';

/** Helpers for the Docker test: the CLIs as a user runs them, and the stack's state as JSON. */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const execFileP = promisify(execFile);

/** Runs a command in the repository; a failure carries its stderr, which says what went wrong. */
export async function sh(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 900_000,
): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, {
      cwd: ROOT,
      env,
      timeout: timeoutMs,
      maxBuffer: 256 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    const output = `${e.stderr ?? ''}${e.stdout ?? ''}`.trim().split('\n').slice(-20).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message.split('\n')[0]}\n${output}`);
  }
}

export const docker = (...args: string[]) => sh('docker', args);

export type Container = {
  id: string;
  name: string;
  service: string;
  status: string;
  exitCode: number;
  /** healthy, unhealthy, starting; none for a container without a HEALTHCHECK. */
  health: string;
  ip: string;
  network: string;
  readOnly: boolean;
};

type Inspect = {
  Id: string;
  Name: string;
  Config: { Labels: Record<string, string> | null };
  State: { Status: string; ExitCode: number; Health?: { Status: string } };
  HostConfig: { ReadonlyRootfs: boolean };
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
};

export async function inspect(ids: string[]): Promise<Container[]> {
  if (ids.length === 0) return [];
  const list = JSON.parse(await docker('inspect', ...ids)) as Inspect[];
  return list.map((c) => {
    const [network = '', settings] = Object.entries(c.NetworkSettings.Networks)[0] ?? [];
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      service: c.Config.Labels?.['com.docker.compose.service'] ?? '',
      status: c.State.Status,
      exitCode: c.State.ExitCode,
      health: c.State.Health?.Status ?? 'none',
      ip: settings?.IPAddress ?? '',
      network,
      readOnly: c.HostConfig.ReadonlyRootfs,
    };
  });
}

/** Every container, network or volume carrying a label, running or not. */
export async function labelled(label: string) {
  const ids = async (...cmd: string[]) =>
    (await docker(...cmd, '--filter', `label=${label}`, '-q')).split('\n').filter(Boolean);
  return {
    containers: await ids('ps', '-a'),
    networks: await ids('network', 'ls'),
    volumes: await ids('volume', 'ls'),
  };
}

/** docker-compose for one project, with the environment a user would put in .env. */
export function composeFor(project: string, env: Record<string, string>) {
  const fullEnv = { ...process.env, ...env };
  const compose = (...args: string[]) => sh('docker-compose', ['-p', project, ...args], fullEnv);
  /** The project's containers (by compose's labels, so the demo profile's too), or one service's. */
  const containers = async (service?: string) => {
    const filters = ['--filter', `label=com.docker.compose.project=${project}`];
    if (service) filters.push('--filter', `label=com.docker.compose.service=${service}`);
    const ids = (await docker('ps', '-a', '-q', ...filters)).split('\n');
    return inspect(ids.filter(Boolean));
  };
  return { compose, containers };
}

/** The dashboard's HTTP API, with Basic auth. */
export function dashboardClient(base: string, user: string, password: string) {
  const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const get = (path: string, headers: Record<string, string> = { authorization: auth }) =>
    fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(10_000) });

  /** Sweep now: POST /api/sweeps, as the button does; the tick's status URL. */
  async function sweepNow(): Promise<string> {
    const res = await fetch(`${base}/api/sweeps`, {
      method: 'POST',
      headers: { authorization: auth },
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status !== 202) throw new Error(`POST /api/sweeps: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { statusUrl: string }).statusUrl;
  }

  async function sweepState(statusUrl: string): Promise<SweepState> {
    const res = await get(statusUrl);
    if (!res.ok) throw new Error(`GET ${statusUrl}: ${res.status} ${await res.text()}`);
    return (await res.json()) as SweepState;
  }

  /** Polls a sweep until its run is done; its final state. */
  const sweepDone = (statusUrl: string, timeoutMs = 180_000) =>
    waitFor(`sweep ${statusUrl}`, () => sweepState(statusUrl), {
      done: (s) => s.done,
      timeoutMs,
      intervalMs: 250,
    });

  return { get, sweepNow, sweepState, sweepDone };
}

/** What GET /api/sweeps/:id answers (dashboard/sweep-progress.ts), as far as the test reads it. */
export type SweepState = {
  runState: string | null;
  progress: { partitions: number; partitionsDone: number; finalized: number } | null;
  summary: {
    finalized: number;
    durationMs: number;
    failedPartitions: { partition: number; error: string }[];
  } | null;
  done: boolean;
};

/** Seconds with one decimal, for the figures the test prints. */
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
