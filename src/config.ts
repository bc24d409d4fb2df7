import { DURATION_HINT, parseDuration } from './duration.ts';
import { parseWholeNumber } from './numbers.ts';
import { redactUrl, registerSecret, registerUrlSecret } from './secrets.ts';

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
  ) {
    super(`invalid setting ${variable}${shown}: expected ${accepted}`);
    this.name = 'ConfigError';
  }
}

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
  return `=${JSON.stringify(setting.show === 'url' ? redactUrl(raw) : raw)}`;
}

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

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS = {
  DATABASE_URL: url('postgres://root@127.0.0.1:5432/audit_sweeper', ['postgres:', 'postgresql:']),
  REDIS_URL: url('redis://127.0.0.1:6379', ['redis:', 'rediss:']),
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
  DASHBOARD_PASSWORD: {
    ...text(undefined, /^.{8,}$/, 'a password of at least 8 characters'),
    show: 'never',
  },
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
    // Masked in every log line and error from now on, valid or not.
    if (setting.show === 'url') registerUrlSecret(raw);
    if (setting.show === 'never') registerSecret(raw);
    try {
      config[name] = setting.parse(raw);
    } catch {
      throw new ConfigError(name, shownValue(setting, raw), setting.accepted);
    }
  }
  return config as Config;
}
