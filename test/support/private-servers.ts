import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';

/**
 * Servers of a test's own, which it may stop, kill and restart at will: the shared PostgreSQL
 * (5432) and Redis (6379) must never be touched that way. Each one listens on 127.0.0.1 on a
 * free port and keeps its files in a temporary folder removed by `destroy`.
 */

const run = promisify(execFile);

import { pollUntil } from './poll.ts';

/** A TCP port nobody listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** True when nothing listens on 127.0.0.1:`port` and we may bind it. */
export async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.once('listening', () => resolve(true));
    server.listen(port, '127.0.0.1');
  });
  if (ok) await new Promise((resolve) => server.close(resolve));
  return ok;
}

/** Polls `probe` every 100 ms until it returns true; a probe that throws counts as not yet. */
export async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>) {
  await pollUntil(`${what} ready`, probe, { timeoutMs, intervalMs: 100, ignoreErrors: true });
}

// ---- Redis ----------------------------------------------------------------------------------

export type PrivateRedis = {
  port: number;
  url: string;
  /** The running redis-server; replaced by `restartEmpty`. */
  process: () => ChildProcess;
  /** Kills the server (SIGKILL: whatever it held is gone) and waits until it has exited. */
  kill: () => Promise<void>;
  /** Starts a fresh, empty server on the same port (after `kill`). */
  start: () => Promise<void>;
  /** Kills the server if it runs and removes its folder. */
  destroy: () => Promise<void>;
};

/**
 * A redis-server with no persistence at all: a restart always comes back empty. With `password`,
 * it requires it (and `url` carries it).
 */
export async function startPrivateRedis(
  options: { password?: string } = {},
): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'audit-sweeper-redis-'));
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  const url = `redis://${auth}127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let log = '';

  const start = async () => {
    log = '';
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        // As in production: BullMQ must never have keys evicted.
        '--maxmemory-policy',
        'noeviction',
        ...(options.password ? ['--requirepass', options.password] : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    proc.stdout?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    proc.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    await until(`private redis-server on port ${port}`, 15_000, async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${log.slice(-1000)}`);
      const client = new Redis(url, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      client.on('error', () => {});
      try {
        await client.connect();
        return (await client.ping()) === 'PONG';
      } finally {
        client.disconnect();
      }
    });
  };

  const kill = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };

  await start();
  return {
    port,
    url,
    process: () => {
      if (!child) throw new Error('not started');
      return child;
    },
    kill,
    start,
    destroy: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- PostgreSQL -----------------------------------------------------------------------------

export type PrivatePostgres = {
  port: number;
  /** A URL for `database` on this server, as its superuser `postgres` (trust auth). */
  url: (database: string) => string;
  /** `pg_ctl stop -m <mode>`: fast ends every session and stops cleanly. */
  stop: (mode?: 'smart' | 'fast' | 'immediate') => Promise<void>;
  /** `pg_ctl start`, waiting until it accepts connections. */
  start: () => Promise<void>;
  /** Stops the server if it runs and removes its folder. */
  destroy: () => Promise<void>;
};

/** The folder with initdb, pg_ctl and postgres: PG_BIN, or the newest /usr/lib/postgresql/N/bin. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error(`no PostgreSQL server binaries under ${root}; set PG_BIN`);
  return join(root, versions[0], 'bin');
}

/**
 * A temporary folder for a private cluster's files, and `exec` to run PostgreSQL's tools in it.
 * initdb and postgres refuse to run as root, so when the tests run as root the folder belongs to
 * the `postgres` user and every tool runs as that user (runuser).
 */
export async function postgresFolder(prefix: string, timeoutMs = 60_000) {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const exec = async (tool: string, args: string[]) => {
    const [file, argv] = asRoot
      ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]]
      : [join(bin, tool), args];
    try {
      return await run(file, argv, { cwd: dir, timeout: timeoutMs });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`${tool} ${args.join(' ')} failed: ${e.message}\n${e.stdout}\n${e.stderr}`);
    }
  };
  return { dir, exec };
}

type PostgresExec = Awaited<ReturnType<typeof postgresFolder>>['exec'];

/** initdb into `data`: trust auth, superuser `postgres`. */
export async function initCluster(exec: PostgresExec, data: string): Promise<void> {
  await exec('initdb', [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--no-sync',
    '--no-instructions',
  ]);
}

/** `pg_ctl start` with the server's `options`, returning once it has started. */
export async function startCluster(
  exec: PostgresExec,
  data: string,
  logFile: string,
  options: string,
): Promise<void> {
  await exec('pg_ctl', ['-D', data, '-l', logFile, '-o', options, '-w', '-t', '60', 'start']);
}

/**
 * A throwaway PostgreSQL cluster (see postgresFolder): trust auth, listening on 127.0.0.1 only,
 * its socket in its folder.
 */
export async function startPrivatePostgres(
  settings: {
    maxConnections?: number;
    /** Keep synchronous_commit on: a crash (immediate shutdown) then loses no acknowledged commit. */
    durableCommits?: boolean;
  } = {},
): Promise<PrivatePostgres> {
  const port = await freePort();
  const { dir, exec } = await postgresFolder('audit-sweeper-pg-');
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');

  await initCluster(exec, data);
  const options = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-k ${dir}`,
    '-c fsync=off',
    `-c synchronous_commit=${settings.durableCommits ? 'on' : 'off'}`,
    '-c full_page_writes=off',
    `-c max_connections=${settings.maxConnections ?? 50}`,
  ].join(' ');
  const start = async () => {
    await startCluster(exec, data, logFile, options);
    await until(`private PostgreSQL on port ${port}`, 30_000, async () => {
      const client = new pg.Client({
        connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
      });
      client.on('error', () => {});
      await client.connect();
      await client.end();
      return true;
    });
  };
  const stop = async (mode: 'smart' | 'fast' | 'immediate' = 'fast') => {
    await exec('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
  };

  try {
    await start();
  } catch (err) {
    await stop('immediate').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    stop,
    start,
    destroy: async () => {
      // Only if it is running: status exits 3 when it is not.
      const running = await exec('pg_ctl', ['-D', data, 'status']).then(
        () => true,
        () => false,
      );
      if (running) await stop('immediate').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
