import { DURATION_HINT, parseDuration } from './duration.ts';
import { parseWholeNumber } from './numbers.ts';
import { parseRedisUrl, REDIS_URL_FORMS, RedisUrlError, redactRedisUrl } from './redis-url.ts';

/**
 * Every setting the product reads, validated once at start. A bad value is a ConfigError naming
 * the variable, the value given and what is accepted; the CLI turns it into exit code 2.
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly value: string,
    readonly accepted: string,
    /** What is wrong, when more can be said than "not what is accepted". */
    readonly reason?: string,
  ) {
    // Passwords in URLs are never repeated.
    super(
      `invalid setting ${variable}=${JSON.stringify(redactRedisUrl(value))}: ${reason ? `${reason}; ` : ''}expected ${accepted}`,
    );
    this.name = 'ConfigError';
  }
}

type Setting<T> = { default: string | undefined; accepted: string; parse: (raw: string) => T };

const duration = (def: string, min = 1): Setting<number> => ({
  default: def,
  accepted: DURATION_HINT + (min > 1 ? ` of at least ${min}ms` : ''),
  parse: (raw) => {
    const ms = parseDuration(raw);
    if (ms === undefined || ms < min) throw new Error();
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

const url = (def: string, protocols: string[]): Setting<string> => ({
  default: def,
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

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS = {
  DATABASE_URL: url('postgres://root@127.0.0.1:5432/audit_sweeper', ['postgres:', 'postgresql:']),
  // The scheme names the topology: one server, a Redis Cluster or Sentinel (src/redis-url.ts).
  REDIS_URL: {
    default: 'redis://127.0.0.1:6379',
    accepted: REDIS_URL_FORMS,
    parse: (raw: string) => {
      parseRedisUrl(raw);
      return raw;
    },
  },
  QUEUE_PREFIX: text('{audit}', /^[^\s:]+$/, 'a key prefix without spaces or ":"'),
  STALE_AFTER: duration('4h'),
  SWEEP_EVERY: duration('60s', 1000),
  SWEEP_PARTITIONS: integer('16', 1, 1024),
  SWEEP_CHUNK_SIZE: integer('1000', 1, 50_000),
  SWEEP_CONCURRENCY: integer('2', 1, 64),
  SWEEP_TIME_BUDGET: duration('30s', 100),
  SWEEP_LOCK_TTL: duration('30s', 1000),
  SWEEP_ATTEMPTS: integer('5', 1, 100),
  RETENTION: {
    default: '90d',
    accepted: `${DURATION_HINT}, or off`,
    parse: (raw: string): number | null => (raw === 'off' ? null : duration('').parse(raw)),
  },
  LIST_SAFETY_MARGIN: duration('30s', 0),
  DASHBOARD_PORT: integer('3000', 0, 65_535),
  DASHBOARD_BASE_PATH: text(
    '',
    /^(\/[\w.~-]+)*$/,
    'a path like /ops/audit with no trailing slash, or empty',
  ),
  DASHBOARD_USER: text('admin', /^[^:\s]+$/, 'a user name without ":" or spaces'),
  DASHBOARD_PASSWORD: text(undefined, /^.{8,}$/, 'a password of at least 8 characters'),
  WORKER_METRICS_PORT: integer('9464', 0, 65_535),
  LOG_LEVEL: text('info', new RegExp(`^(${LOG_LEVELS.join('|')})$`), LOG_LEVELS.join(', ')),
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof SETTINGS;
/** Settings with no default: undefined when not given. */
type Optional = 'DASHBOARD_PASSWORD';
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
    try {
      config[name] = setting.parse(raw);
    } catch (err) {
      throw new ConfigError(
        name,
        raw,
        setting.accepted,
        err instanceof RedisUrlError ? err.message : undefined,
      );
    }
  }
  // On a Redis Cluster every key of the queue must hash to one slot (BullMQ's scripts touch
  // several at once): only the part of the prefix inside {…} is hashed.
  const prefix = config.QUEUE_PREFIX as string;
  if (parseRedisUrl(config.REDIS_URL as string).kind === 'cluster' && !/\{[^{}]+\}/.test(prefix))
    throw new ConfigError(
      'QUEUE_PREFIX',
      prefix,
      'a prefix with a hash tag such as {audit}',
      'on a Redis Cluster (REDIS_URL=redis+cluster://…) the queue keys would spread over slots',
    );
  return config as Config;
}
