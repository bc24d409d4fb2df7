import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './wait.ts';

const run = promisify(execFile);

/** Where a dockerd started by the test writes its log; it keeps running for the next test run. */
export const DOCKERD_LOG = join(tmpdir(), 'audit-sweeper-dockerd.log');

export type Engine = { ok: true; version: string } | { ok: false; reason: string };

const onPath = async (cmd: string) =>
  run('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );

async function serverVersion(): Promise<string | undefined> {
  try {
    const { stdout } = await run('docker', ['version', '--format', '{{.Server.Version}}'], {
      timeout: 10_000,
    });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Debian's packages, as a new user would install them (waits for dpkg). */
async function aptInstall(packages: string[]): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  await run('apt-get', [...lock, 'update', '-qq'], { env, timeout: 900_000 });
  await run('apt-get', [...lock, 'install', '-y', '-qq', ...packages], { env, timeout: 900_000 });
}

/**
 * A Docker engine to run the stack on: the one that answers, else dockerd installed and started
 * here. `ok: false` only when this machine cannot have one (not root, or a kernel that refuses
 * to run dockerd), with the reason; anything else that goes wrong throws.
 */
export async function ensureDockerEngine(): Promise<Engine> {
  const root = process.getuid?.() === 0;
  // The offline base images are built from a debootstrap root filesystem, engine or not.
  if (root && !(await onPath('debootstrap'))) await aptInstall(['debootstrap']);
  const running = await serverVersion();
  if (running) return { ok: true, version: running };
  if (!root) return { ok: false, reason: 'no Docker engine, and not root' };

  const missing: string[] = [];
  if (!(await onPath('dockerd'))) missing.push('docker.io');
  if (!(await onPath('docker-compose'))) missing.push('docker-compose');
  if (missing.length) await aptInstall(missing);

  const log = openSync(DOCKERD_LOG, 'a');
  const dockerd = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  let exited = false;
  dockerd.once('exit', () => {
    exited = true;
  });
  dockerd.unref();
  try {
    const version = await waitFor('dockerd to answer', async () => exited || serverVersion(), {
      timeoutMs: 60_000,
      intervalMs: 1_000,
    });
    if (typeof version === 'string') return { ok: true, version };
  } catch {
    // Falls through to the log: a daemon that neither answers nor exits is a refusal too.
  }
  if (!exited) dockerd.kill();
  const tail = existsSync(DOCKERD_LOG)
    ? readFileSync(DOCKERD_LOG, 'utf8').trim().split('\n').slice(-3).join(' | ')
    : '';
  return { ok: false, reason: `dockerd does not run on this kernel: ${tail}` };
}
