import { createRandom } from '../../src/simulate/operations.ts';

/**
 * The run's options and its fault schedule, drawn from one seed: the same seed gives the same
 * faults at the same offsets against the same targets, so a failing run can be replayed with
 * `--seed N` (process timing still varies; the schedule does not).
 */

export type Options = { seed: number; durationMs: number; workers: number };

export function parseArgs(argv: string[]): Options {
  const o: Options = { seed: Math.floor(Math.random() * 2 ** 31), durationMs: 100_000, workers: 4 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value = ''] = [argv[i], argv[i + 1]];
    if (flag === '--seed' && /^\d+$/.test(value)) o.seed = Number(value);
    else if (flag === '--duration' && parseMs(value) !== undefined)
      o.durationMs = parseMs(value) ?? 0;
    else if (flag === '--workers' && /^\d+$/.test(value) && Number(value) >= 3)
      o.workers = Number(value);
    else {
      console.error(`usage: npm run chaos -- [--seed N] [--duration 100s|30m] [--workers N>=3]`);
      process.exit(2);
    }
  }
  return o;
}

function parseMs(text: string): number | undefined {
  const m = /^(\d+)(s|m|h)$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

export type Server = 'redis' | 'pg';
export type ActionKind = 'sweep-now' | 'run-now' | 'retry-failed' | 'retry-job' | 'retry-completed';
export type Fault =
  | { kind: 'sigkill'; slot: number; restartAfterMs: number }
  | { kind: 'sigstop'; slot: number; ms: number }
  | { kind: 'latency'; server: Server; slot: number | 'all'; latencyMs: number; ms: number }
  | { kind: 'reset'; server: Server; slot: number | 'all' }
  | { kind: 'blackhole'; slot: number; ms: number; heal: 'deliver' | 'reset' }
  | { kind: 'redis-restart'; downMs: number }
  | { kind: 'pg-restart'; mode: 'fast' | 'immediate'; downMs: number }
  | { kind: 'partitions'; slots: number[]; partitions: number }
  | { kind: 'backlog-burst'; rows: number }
  | { kind: 'action'; actions: ActionKind[] };
export type Event = { at: number; fault: Fault };

/** Counts for a 100 s fault phase; a longer one scales them. */
const BASE = {
  sigkill: 12,
  sigstop: 2,
  latency: 6,
  reset: 6,
  blackhole: 2,
  redisRestart: 2,
  pgRestart: 2,
  burst: 4,
  actions: 110,
};

export function buildSchedule(o: Options, lockTtlMs: number): Event[] {
  const r = createRandom(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const between = (lo: number, hi: number) => Math.round(lo + r() * (hi - lo));
  const scale = Math.max(1, o.durationMs / 100_000);
  const n = (base: number) => Math.ceil(base * scale);
  const slots = Array.from({ length: o.workers }, (_, i) => i);
  // Faults start after the fleet is up and end with time left for the last one to heal.
  const at = () => between(o.durationMs * 0.05, o.durationMs * 0.85);
  const events: Event[] = [];
  const add = (fault: Fault, when = at()) => events.push({ at: when, fault });

  for (let i = 0; i < n(BASE.sigkill); i++)
    add({ kind: 'sigkill', slot: pick(slots), restartAfterMs: between(200, 3_000) });
  for (let i = 0; i < n(BASE.sigstop); i++)
    add({ kind: 'sigstop', slot: pick(slots), ms: between(lockTtlMs * 1.5, lockTtlMs * 3) });
  for (let i = 0; i < n(BASE.latency); i++)
    add({
      kind: 'latency',
      server: i % 2 ? 'pg' : 'redis',
      slot: r() < 0.3 ? 'all' : pick(slots),
      latencyMs: between(20, 400),
      ms: between(2_000, 8_000),
    });
  for (let i = 0; i < n(BASE.reset); i++)
    add({ kind: 'reset', server: i % 2 ? 'pg' : 'redis', slot: r() < 0.3 ? 'all' : pick(slots) });
  for (let i = 0; i < n(BASE.blackhole); i++)
    add({
      kind: 'blackhole',
      slot: pick(slots),
      ms: between(lockTtlMs * 2, lockTtlMs * 4),
      heal: i % 2 ? 'reset' : 'deliver',
    });
  for (let i = 0; i < n(BASE.redisRestart); i++)
    add({ kind: 'redis-restart', downMs: between(300, 3_000) });
  for (let i = 0; i < n(BASE.pgRestart); i++)
    add({ kind: 'pg-restart', mode: i % 2 ? 'immediate' : 'fast', downMs: between(300, 3_000) });
  for (let i = 0; i < n(BASE.burst); i++) add({ kind: 'backlog-burst', rows: 10_000 });
  // Half the workers get another partition count, once per 100 s.
  for (let i = 0; i < Math.ceil(scale); i++)
    add(
      {
        kind: 'partitions',
        slots: slots.filter((s) => s % 2 === i % 2),
        partitions: i % 2 ? 16 : 7,
      },
      Math.round(o.durationMs * ((i + 0.4) / Math.ceil(scale))),
    );
  const kinds: ActionKind[] = ['sweep-now', 'run-now', 'retry-failed', 'retry-job'];
  let actions = 0;
  while (actions < n(BASE.actions)) {
    // One in five is a burst of clicks at once; one retry in ten is of a completed job.
    const size = r() < 0.2 ? between(3, 5) : 1;
    const batch = Array.from({ length: size }, () => {
      const k = pick(kinds);
      return k === 'retry-job' && r() < 0.3 ? 'retry-completed' : k;
    });
    add({ kind: 'action', actions: batch }, between(o.durationMs * 0.02, o.durationMs * 0.95));
    actions += size;
  }
  return events.sort((a, b) => a.at - b.at);
}
