import { readFileSync } from 'node:fs';
import { type CliProcess, startCli } from '../support/cli.ts';
import { type FaultyProxy, startProxy } from './proxy.ts';

/**
 * The product's processes as an operator runs them: `audit-sweeper worker` in numbered slots and
 * one `audit-sweeper dashboard`, real child processes from the TypeScript sources, each reaching
 * Redis and PostgreSQL through proxy listeners of its own (kept by the slot across replacements),
 * so a network fault can hit one worker. Every process that ever ran is kept, with its times,
 * for the checks.
 */

export type WorkerProcess = {
  slot: number;
  name: string;
  partitions: number;
  cli: CliProcess;
  startedAt: number;
  endedAt: number | null;
  endedBy: 'sigkill' | 'sigterm' | 'exit' | null;
  /** Windows when the process was frozen (SIGSTOP) or its Redis traffic blackholed. */
  frozen: [number, number][];
  blackholed: [number, number][];
  maxRssMb: number;
};

export type Slot = {
  redis: FaultyProxy;
  pg: FaultyProxy;
  current: WorkerProcess | null;
  partitions: number;
};

export type Fleet = {
  slots: Slot[];
  all: WorkerProcess[];
  dashboard: CliProcess;
  dashboardUrl: string;
  dashboardProxies: FaultyProxy[];
  startWorker: (slot: number) => WorkerProcess;
  alive: (w: WorkerProcess | null) => w is WorkerProcess;
  stop: () => Promise<void>;
};

export async function startFleet(o: {
  workers: number;
  partitions: number;
  redisPort: number;
  pgPort: number;
  database: string;
  password: string;
  dashboardPort: number;
  env: Record<string, string>;
}): Promise<Fleet> {
  const urls = (redis: FaultyProxy, pg: FaultyProxy) => ({
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
    DATABASE_URL: `postgres://postgres@127.0.0.1:${pg.port}/${o.database}`,
  });
  const slots: Slot[] = [];
  for (let i = 0; i < o.workers; i++) {
    slots.push({
      redis: await startProxy(`w${i}-redis`, o.redisPort),
      pg: await startProxy(`w${i}-pg`, o.pgPort),
      current: null,
      partitions: o.partitions,
    });
  }
  const all: WorkerProcess[] = [];
  const alive = (w: WorkerProcess | null): w is WorkerProcess =>
    w !== null && w.cli.child.exitCode === null && w.cli.child.signalCode === null;

  const startWorker = (i: number): WorkerProcess => {
    const slot = slots[i];
    if (!slot) throw new Error(`no slot ${i}`);
    const cli = startCli(['worker'], {
      ...o.env,
      ...urls(slot.redis, slot.pg),
      SWEEP_PARTITIONS: String(slot.partitions),
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'debug',
    });
    const w: WorkerProcess = {
      slot: i,
      name: `w${i}.${all.filter((x) => x.slot === i).length}`,
      partitions: slot.partitions,
      cli,
      startedAt: Date.now(),
      endedAt: null,
      endedBy: null,
      frozen: [],
      blackholed: [],
      maxRssMb: 0,
    };
    cli.exited.then(() => {
      w.endedAt ??= Date.now();
      w.endedBy ??= 'exit';
    });
    all.push(w);
    slot.current = w;
    return w;
  };

  const dashRedis = await startProxy('dashboard-redis', o.redisPort);
  const dashPg = await startProxy('dashboard-pg', o.pgPort);
  const dashboard = startCli(['dashboard'], {
    ...o.env,
    ...urls(dashRedis, dashPg),
    DASHBOARD_PORT: String(o.dashboardPort),
    DASHBOARD_PASSWORD: o.password,
  });
  for (let i = 0; i < o.workers; i++) startWorker(i);
  await Promise.all([
    dashboard.waitForOutput(/dashboard listening/, 120_000),
    ...all.map((w) => w.cli.waitForOutput(/sweep worker started/, 120_000)),
  ]);

  return {
    slots,
    all,
    dashboard,
    dashboardUrl: `http://127.0.0.1:${o.dashboardPort}`,
    dashboardProxies: [dashRedis, dashPg],
    startWorker,
    alive,
    stop: async () => {
      const procs = [...all.map((w) => w.cli), dashboard];
      for (const p of procs) {
        if (p.child.exitCode === null && p.child.signalCode === null) {
          p.child.kill('SIGCONT');
          p.child.kill('SIGTERM');
        }
      }
      const timer = setTimeout(() => {
        for (const p of procs) p.child.kill('SIGKILL');
      }, 30_000);
      await Promise.all(procs.map((p) => p.exited));
      clearTimeout(timer);
      for (const s of slots) await Promise.all([s.redis.close(), s.pg.close()]);
      await Promise.all([dashRedis.close(), dashPg.close()]);
    },
  };
}

/** Resident memory of a live process in MB (Linux), or undefined once it has gone. */
export function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
