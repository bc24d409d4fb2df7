import { DURATION_HINT, formatDuration, parseDuration, TIMER_MAX_MS } from './duration.ts';
import { parseWholeNumber } from './numbers.ts';
import { parseRedisUrl, REDIS_URL_FORMS, RedisUrlError } from './redis-url.ts';
import { registerSecret, registerUrlSecret } from './secrets.ts';

/**
 * Every setting the product reads, validated once at start. A bad value is a ConfigError naming
 * the variable, the value given (a password masked, a secret not shown at all) and what is
 * accepted; the CLI turns it into exit code 2.
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    shown: string,
    readonly accepted: string,
    /** What is wrong, when more can be said than "not what is accepted". */
    readonly reason?: string,
  ) {
    super(
      `invalid setting ${variable}${shown}: ${reason ? `${reason}; ` : ''}expected ${accepted}`,
    );
    this.name = 'ConfigError';
  }
}

/** Thrown by a setting's parse when it can say what is wrong (never quoting the value). */
class SettingReason extends Error {}

type Setting<T> = {
  default: string | undefined;
  accepted: string;
  parse: (raw: string) => T;
  /** How a value may be shown: in full, with its URL password masked, or not at all. */
  show?: 'url' | 'never';
};

function shownValue(setting: Setting<unknown>, raw: string): string {
  if (setting.show === 'never')
    return ` (value not shown: it is a secret; ${raw.length} characters)`;
  if (setting.show === 'url')
    return ` (${urlOutline(raw)}; value not shown: it may hold a password)`;
  return `=${JSON.stringify(raw)}`;
}

/**
 * What can be said of a connection URL without its value: a URL that fails to parse is the
 * very case where a password cannot be told from the rest (`postgres://app:Ab/cd@db` puts
 * half of it in the path), so only the scheme, and the host when the URL parses, are named.
 */
function urlOutline(raw: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1];
  if (!scheme) return 'not a URL';
  try {
    const host = new URL(raw).hostname;
    if (host && !host.includes(',')) return `scheme ${scheme}://, host ${host}`;
  } catch {
    // Unparsable: the scheme alone.
  }
  return `scheme ${scheme}://`;
}

/**
 * Upper bounds the code can honour. Node's timers hold at most 2^31-1 ms (about 24.8 days) and
 * fire after 1 ms when given more; PostgreSQL timestamps end in 4713 BC, so an interval
 * subtracted from now() must stay far from that.
 */
const TIMER_MAX = TIMER_MAX_MS;
const INTERVAL_MAX = 36_500 * 86_400_000;

const duration = (def: string, min: number, max: number): Setting<number> => ({
  default: def,
  accepted: `${DURATION_HINT}, from ${formatDuration(min)} to ${formatDuration(max)}`,
  parse: (raw) => {
    const ms = parseDuration(raw);
    if (ms === undefined || ms < min || ms > max) throw new Error();
    return ms;
  },
});

const integer = (def: string, min: number, max: number): Setting<number> => ({
  default: def,
  accepted: `a whole number from ${min} to ${max}`,
  parse: (raw) => {
    const n = parseWholeNumber(raw, min, max);
    if (n === undefined) throw new Error();
    return n;
  },
});

const url = (def: string | undefined, protocols: string[]): Setting<string> => ({
  default: def,
  show: 'url',
  accepted: `a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
  parse: (raw) => {
    if (!protocols.includes(new URL(raw).protocol)) throw new Error();
    return raw;
  },
});

const text = (def: string | undefined, pattern: RegExp, accepted: string): Setting<string> => ({
  default: def,
  accepted,
  parse: (raw) => {
    if (!pattern.test(raw)) throw new Error();
    return raw;
  },
});

/**
 * The sweeper commits its chunks without waiting for the WAL flush (synchronous_commit off for
 * those transactions): PostgreSQL flushes them within 3 x wal_writer_delay (600 ms by default),
 * and a crash before that leaves the rows incomplete for the next run to finalize. The API must
 * never list a finalization a crash could still undo, so it stays this far behind now: well
 * above 600 ms plus a slow chunk. Raise LIST_SAFETY_MARGIN with wal_writer_delay.
 */
export const LIST_SAFETY_MARGIN_FLOOR_MS = 2_000;

/** The adaptive throttle's target: a multiple of the idle baseline, or a fixed latency (ms). */
export type ImpactTarget = { multiple: number } | { ms: number };

/** Retention never deletes completed rows younger than a day (see RETENTION). */
export const RETENTION_FLOOR_MS = 86_400_000;

/** `off` (null), or what `setting` accepts. */
const orOff = <T>(setting: Setting<T>, def: string): Setting<T | null> => ({
  default: def,
  accepted: `${setting.accepted}, or off`,
  parse: (raw) => (raw === 'off' ? null : setting.parse(raw)),
});

/**
 * Passwords shipped as placeholders (deploy/kubernetes/secret.yaml says `REPLACE-ME-…`): a
 * deploy that forgot to replace one would run with a password anyone can read in this
 * repository, so it is refused at start instead.
 */
const PLACEHOLDER_PASSWORD = /replace[-_ ]?me|change[-_ ]?me/i;

const password = (): Setting<string> => ({
  default: undefined,
  show: 'never',
  accepted: 'a password of at least 8 characters, not a placeholder',
  parse: (raw) => {
    if (raw.length < 8) throw new Error();
    if (PLACEHOLDER_PASSWORD.test(raw))
      throw new SettingReason('it is the placeholder shipped in the examples: set a real password');
    return raw;
  },
});

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS = {
  DATABASE_URL: url('postgres://root@127.0.0.1:5432/audit_sweeper', ['postgres:', 'postgresql:']),
  // The scheme names the topology: one server, a Redis Cluster or Sentinel (src/redis-url.ts).
  REDIS_URL: {
    default: 'redis://127.0.0.1:6379',
    accepted: REDIS_URL_FORMS,
    show: 'url',
    parse: (raw: string) => {
      const target = parseRedisUrl(raw);
      // Multi-host forms are no WHATWG URL: register their passwords from the parse.
      registerSecret(target.password);
      if (target.kind === 'sentinel') registerSecret(target.sentinelPassword);
      return raw;
    },
  } satisfies Setting<string>,
  QUEUE_PREFIX: text('{audit}', /^[^\s:]+$/, 'a key prefix without spaces or ":"'),
  STALE_AFTER: duration('4h', 1, INTERVAL_MAX),
  SWEEP_EVERY: duration('60s', 1000, TIMER_MAX),
  SWEEP_PARTITIONS: integer('16', 1, 1024),
  SWEEP_CHUNK_SIZE: integer('5000', 1, 50_000),
  SWEEP_CONCURRENCY: integer('2', 1, 64),
  SWEEP_TIME_BUDGET: duration('30s', 100, TIMER_MAX),
  // The shutdown bound is 2 x SWEEP_LOCK_TTL + 10s, one timer: half the timer bound.
  SWEEP_LOCK_TTL: duration('30s', 1000, TIMER_MAX / 2),
  SWEEP_ATTEMPTS: integer('5', 1, 100),
  // Bounds on every statement of the worker's pool: a chunk is 10-100 ms and never waits for a
  // row (SKIP LOCKED), so it only waits this long for a table lock (DDL) before failing, and
  // is retried, instead of holding its partition behind an ALTER TABLE for good.
  SWEEP_LOCK_TIMEOUT: duration('5s', 100, 3_600_000),
  SWEEP_STATEMENT_TIMEOUT: duration('60s', 1_000, 3_600_000),
  // A floor of one day: `90m` typed for `90d` would delete every completed row older than 90
  // minutes within the hour, beyond recovery.
  RETENTION: {
    default: '90d',
    accepted: `${DURATION_HINT}, from ${formatDuration(RETENTION_FLOOR_MS)} to ${formatDuration(INTERVAL_MAX)}, or off`,
    parse: (raw: string): number | null => {
      if (raw === 'off') return null;
      const ms = duration('', 1, INTERVAL_MAX).parse(raw);
      if (ms < RETENTION_FLOOR_MS)
        throw new SettingReason(
          `${formatDuration(ms)} is below the floor of 1 day (a typo for days would delete the log); use off to keep every row`,
        );
      return ms;
    },
  },
  // Read by `migrate` only: a plain audit_log, or one partitioned by time_started with whole
  // partitions dropped by retention (src/time-partitions/). Converting is one way.
  AUDIT_LOG_LAYOUT: {
    default: 'plain',
    accepted: 'plain or partitioned',
    parse: (raw: string): 'plain' | 'partitioned' => {
      if (raw !== 'plain' && raw !== 'partitioned') throw new Error();
      return raw;
    },
  },
  // The width of one time partition, fixed when `migrate` converts (workers read it from the
  // database); from an hour to 31 days, aligned on the Unix epoch (UTC midnights for 1d).
  TIME_PARTITION_SPAN: duration('1d', 3_600_000, 31 * 86_400_000),
  LIST_SAFETY_MARGIN: duration('30s', LIST_SAFETY_MARGIN_FLOOR_MS, INTERVAL_MAX),
  DATABASE_READ_URL: url(undefined, ['postgres:', 'postgresql:']),
  API_POOL_SIZE: integer('4', 1, 100),
  API_MAX_QUEUED: integer('100', 0, 10_000),
  API_MAX_WAIT: duration('1s', 1, 60_000),
  API_STATEMENT_TIMEOUT: duration('5s', 100, 3_600_000),
  SWEEP_MAX_ROWS_PER_SECOND: orOff(integer('', 1, 10_000_000), 'off'),
  SWEEP_MAX_REPLICA_LAG: orOff(duration('', 1, INTERVAL_MAX), '10s'),
  SWEEP_MAX_ACTIVE_BACKENDS: orOff(integer('', 1, 100_000), 'off'),
  // Partition sweeps running at once in the whole fleet, whatever the pod count (BullMQ's
  // global concurrency on the partition queue): more pods add availability, never load.
  SWEEP_MAX_STREAMS: orOff(integer('', 1, 1024), '2'),
  // The adaptive throttle's target for the latency of an application-like commit
  // (src/control/adaptive.ts): a multiple of the measured idle baseline, or a duration.
  SWEEP_IMPACT_TARGET: {
    default: '3x',
    accepted: `a multiple of the idle commit latency from 1.5x to 100x (such as 3x), ${DURATION_HINT} from 1ms to 10s, or off`,
    parse: (raw: string): ImpactTarget | null => {
      if (raw === 'off') return null;
      const m = /^(\d+(?:\.\d+)?)x$/.exec(raw);
      if (m) {
        const multiple = Number(m[1]);
        if (!(multiple >= 1.5 && multiple <= 100)) throw new Error();
        return { multiple };
      }
      return { ms: duration('', 1, 10_000).parse(raw) };
    },
  },
  DASHBOARD_PORT: integer('3000', 0, 65_535),
  DASHBOARD_BASE_PATH: text(
    '',
    /^(\/[\w.~-]+)*$/,
    'a path like /ops/audit with no trailing slash, or empty',
  ),
  DASHBOARD_USER: text('admin', /^[^:\s]+$/, 'a user name without ":" or spaces'),
  DASHBOARD_PASSWORD: password(),
  // The read-only credential: the audit-log API, the overview and /metrics, no action.
  DASHBOARD_READER_USER: text('reader', /^[^:\s]+$/, 'a user name without ":" or spaces'),
  DASHBOARD_READER_PASSWORD: password(),
  // The browser's origin behind a reverse proxy that rewrites Host (the same-origin check).
  DASHBOARD_PUBLIC_URL: {
    default: undefined,
    accepted: 'an http:// or https:// URL such as https://ops.example.com/audit',
    parse: (raw: string) => {
      const u = new URL(raw);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
      return u.origin;
    },
  } satisfies Setting<string>,
  // Reverse proxies in front of the dashboard, whose X-Forwarded-For names the client: the
  // login back-off counts failures per client address, not per proxy.
  DASHBOARD_TRUSTED_PROXIES: integer('0', 0, 10),
  WORKER_METRICS_PORT: integer('9464', 0, 65_535),
  LOG_LEVEL: text('info', new RegExp(`^(${LOG_LEVELS.join('|')})$`), LOG_LEVELS.join(', ')),
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof SETTINGS;
/** Settings with no default: undefined when not given. */
type Optional =
  | 'DASHBOARD_PASSWORD'
  | 'DASHBOARD_READER_PASSWORD'
  | 'DASHBOARD_PUBLIC_URL'
  | 'DATABASE_READ_URL';
export type Config = {
  [K in Exclude<keyof Settings, Optional>]: ReturnType<Settings[K]['parse']>;
} & {
  [K in Optional]: ReturnType<Settings[K]['parse']> | undefined;
};

/** Reads every setting from the environment; throws ConfigError on the first bad one. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const config: Record<string, unknown> = {};
  for (const [name, setting] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const given = env[name];
    const raw = given === undefined || given === '' ? setting.default : given;
    if (raw === undefined) {
      config[name] = undefined;
      continue;
    }
    // Masked in every log line and error from now on, valid or not.
    if (setting.show === 'url') registerUrlSecret(raw);
    if (setting.show === 'never') registerSecret(raw);
    try {
      config[name] = setting.parse(raw);
    } catch (err) {
      throw new ConfigError(
        name,
        shownValue(setting, raw),
        setting.accepted,
        err instanceof RedisUrlError || err instanceof SettingReason ? err.message : undefined,
      );
    }
  }
  // On a Redis Cluster every key of the queue must hash to one slot (BullMQ's scripts touch
  // several at once): only the part of the prefix inside {…} is hashed.
  const prefix = config.QUEUE_PREFIX as string;
  if (parseRedisUrl(config.REDIS_URL as string).kind === 'cluster' && !/\{[^{}]+\}/.test(prefix))
    throw new ConfigError(
      'QUEUE_PREFIX',
      shownValue(SETTINGS.QUEUE_PREFIX, prefix),
      'a prefix with a hash tag such as {audit}',
      'on a Redis Cluster (REDIS_URL=redis+cluster://…) the queue keys would spread over slots',
    );
  if (config.DASHBOARD_READER_USER === config.DASHBOARD_USER)
    throw new ConfigError(
      'DASHBOARD_READER_USER',
      shownValue(SETTINGS.DASHBOARD_READER_USER, config.DASHBOARD_READER_USER as string),
      'a user name other than DASHBOARD_USER',
      'the reader and the operator must be told apart by their user names',
    );
  return config as Config;
}
