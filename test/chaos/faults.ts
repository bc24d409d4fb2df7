import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { PrivatePostgres, PrivateRedis } from '../support/private-servers.ts';
import { seed } from '../support/seed.ts';
import type { Fleet, WorkerProcess } from './fleet.ts';
import type { FaultyProxy } from './proxy.ts';
import type { Fault } from './schedule.ts';
import { lockHolding } from './sweep-intervals.ts';
import { act, type Http } from './traffic.ts';

/**
 * Carries out one scheduled fault and heals it; counts what was really injected (a fault aimed
 * at a slot whose worker is down goes to another live worker, or is skipped and counted so).
 */
export type Injector = {
  inject: (f: Fault) => Promise<void>;
  counts: Map<string, number>;
  actionOutcomes: Map<string, number>;
  redisRestarts: [number, number][];
  /** When the last fault was healed (every process back and every link clean). */
  lastHealedAt: () => number;
};

/** How long a fault aimed at a lock holder waits for one. */
const HOLDER_WAIT_MS = 5_000;

export function createInjector(o: {
  fleet: Fleet;
  redis: PrivateRedis;
  postgres: PrivatePostgres;
  admin: pg.Pool;
  extraProxies: FaultyProxy[];
  http: Http;
  lockTtlMs: number;
}): Injector {
  const { fleet } = o;
  const counts = new Map<string, number>();
  const actionOutcomes = new Map<string, number>();
  const redisRestarts: [number, number][] = [];
  let lastHealedAt = 0;
  const count = (k: string, n = 1) => counts.set(k, (counts.get(k) ?? 0) + n);
  const healed = () => {
    lastHealedAt = Math.max(lastHealedAt, Date.now());
  };
  // One operation at a time per slot (kill + replacement, partition change) and per server.
  const slotLocks = fleet.slots.map(() => Promise.resolve());
  const exclusive = <T>(i: number, fn: () => Promise<T>): Promise<T> => {
    const next = (slotLocks[i] as Promise<void>).then(fn);
    slotLocks[i] = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  };
  let serverLock = Promise.resolve();
  const serverExclusive = (fn: () => Promise<void>) => {
    serverLock = serverLock.then(fn).catch((err) => console.error('server fault failed:', err));
    return serverLock;
  };
  const slotOrder = (preferred: number) => [
    preferred,
    ...fleet.slots.map((_, i) => i).filter((i) => i !== preferred),
  ];
  const live = (preferred: number): WorkerProcess | undefined => {
    for (const i of slotOrder(preferred)) {
      const w = fleet.slots[i]?.current ?? null;
      if (fleet.alive(w) && w.endedBy === null) return w;
    }
    return undefined;
  };
  // SIGSTOP and blackholes are aimed at a worker while it holds a partition lock, or they would
  // rarely take one from its holder once the backlog is down to short sweeps: the first worker
  // seen holding one within a few seconds (the scheduled slot's first), else the scheduled one.
  const isFrozen = (w: WorkerProcess) => w.frozen.some(([, to]) => to === Infinity);
  const holding = new Map<WorkerProcess, () => boolean>();
  const holdsLock = (w: WorkerProcess) => {
    const check = holding.get(w) ?? lockHolding(w);
    holding.set(w, check);
    return check();
  };
  const lockHolder = async (preferred: number): Promise<WorkerProcess | undefined> => {
    const deadline = Date.now() + HOLDER_WAIT_MS;
    while (Date.now() < deadline) {
      for (const i of slotOrder(preferred)) {
        const w = fleet.slots[i]?.current ?? null;
        if (fleet.alive(w) && w.endedBy === null && !isFrozen(w) && holdsLock(w)) return w;
      }
      await sleep(5);
    }
    return undefined;
  };
  const proxiesOf = (server: 'redis' | 'pg', slot: number | 'all'): FaultyProxy[] => {
    if (slot !== 'all') return [fleet.slots[slot]?.[server] as FaultyProxy];
    return [
      ...fleet.slots.map((s) => s[server]),
      ...[...fleet.dashboardProxies, ...o.extraProxies].filter((p) => p.name.endsWith(server)),
    ];
  };

  const inject = async (f: Fault): Promise<void> => {
    switch (f.kind) {
      case 'sigkill': {
        const w = live(f.slot);
        if (!w) return void count('sigkill skipped (no live worker)');
        await exclusive(w.slot, async () => {
          if (!fleet.alive(w)) return;
          w.endedAt = Date.now();
          w.endedBy = 'sigkill';
          w.cli.child.kill('SIGKILL');
          count('SIGKILL of a worker');
          await w.cli.exited;
          await sleep(f.restartAfterMs);
          fleet.startWorker(w.slot);
          count('replacement worker started');
          healed();
        });
        return;
      }
      case 'sigstop': {
        const holder = await lockHolder(f.slot);
        const w = holder ?? live(f.slot);
        if (!w || isFrozen(w)) return void count('sigstop skipped');
        const window: [number, number] = [Date.now(), Infinity];
        w.frozen.push(window);
        w.cli.child.kill('SIGSTOP');
        count(`SIGSTOP > lock TTL, then SIGCONT`);
        count(`SIGSTOP of ${holder ? 'a lock holder' : 'a worker holding no lock (none found)'}`);
        await sleep(f.ms);
        w.cli.child.kill('SIGCONT');
        window[1] = Date.now();
        healed();
        return;
      }
      case 'latency': {
        const proxies = proxiesOf(f.server, f.slot);
        for (const p of proxies) p.latencyMs = f.latencyMs;
        count(`${f.server} latency (${f.slot === 'all' ? 'every process' : 'one worker'})`);
        await sleep(f.ms);
        for (const p of proxies) p.latencyMs = 0;
        healed();
        return;
      }
      case 'reset': {
        const n = proxiesOf(f.server, f.slot).reduce((sum, p) => sum + p.reset(), 0);
        count(
          `${f.server} connection reset (${f.slot === 'all' ? 'every process' : 'one worker'})`,
        );
        count(`${f.server} connections reset`, n);
        healed();
        return;
      }
      case 'blackhole': {
        const holder = await lockHolder(f.slot);
        const slot = fleet.slots[holder?.slot ?? f.slot];
        if (!slot || slot.redis.blackholed) return void count('blackhole skipped');
        const window: [number, number] = [Date.now(), Infinity];
        const victims = new Set<WorkerProcess>();
        slot.redis.blackholed = true;
        count(`blackhole of one worker's Redis (heal: ${f.heal})`);
        count(`blackhole of ${holder ? 'a lock holder' : 'a worker holding no lock (none found)'}`);
        const until = Date.now() + f.ms;
        while (Date.now() < until) {
          if (slot.current) victims.add(slot.current);
          await sleep(100);
        }
        slot.redis.heal(f.heal);
        window[1] = Date.now();
        for (const w of victims) w.blackholed.push(window);
        healed();
        return;
      }
      case 'redis-restart':
        await serverExclusive(async () => {
          const window: [number, number] = [Date.now(), Infinity];
          redisRestarts.push(window);
          await o.redis.kill();
          await sleep(f.downMs);
          await o.redis.start();
          window[1] = Date.now();
          count('Redis restarted, data lost');
          healed();
        });
        return;
      case 'pg-restart':
        await serverExclusive(async () => {
          await o.postgres.stop(f.mode);
          await sleep(f.downMs);
          await o.postgres.start();
          count(`PostgreSQL restarted (${f.mode} shutdown)`);
          healed();
        });
        return;
      case 'partitions':
        await Promise.all(
          f.slots.map((i) =>
            exclusive(i, async () => {
              const slot = fleet.slots[i];
              if (!slot) return;
              slot.partitions = f.partitions;
              const w = slot.current;
              if (fleet.alive(w)) {
                w.endedAt = Date.now();
                w.endedBy = 'sigterm';
                w.cli.child.kill('SIGCONT');
                w.cli.child.kill('SIGTERM');
                const timer = setTimeout(
                  () => w.cli.child.kill('SIGKILL'),
                  2 * o.lockTtlMs + 15_000,
                );
                await w.cli.exited;
                clearTimeout(timer);
              }
              fleet.startWorker(i);
              count(`worker restarted with SWEEP_PARTITIONS=${f.partitions}`);
              healed();
            }),
          ),
        );
        return;
      case 'backlog-burst':
        for (let tries = 0; tries < 30; tries++) {
          try {
            await seed(o.admin, {
              kind: 'incomplete',
              count: f.rows,
              tag: `burst${Date.now()}`,
              ageMs: 60_000,
            });
            count('stale rows added mid-run', f.rows);
            return;
          } catch {
            await sleep(1_000);
          }
        }
        return;
      case 'action': {
        if (f.actions.length > 1) count('concurrent action bursts');
        const results = await Promise.all(f.actions.map((k) => act(o.http, k)));
        f.actions.forEach((k, i) => {
          count(`action: ${k}`);
          const key = `${k} -> ${results[i]}`;
          actionOutcomes.set(key, (actionOutcomes.get(key) ?? 0) + 1);
        });
        return;
      }
    }
  };
  return { inject, counts, actionOutcomes, redisRestarts, lastHealedAt: () => lastHealedAt };
}
