/**
 * REDIS_URL names the Redis topology by its scheme:
 *
 *   redis://  rediss://                      one server (any URL ioredis accepts)
 *   redis+cluster://[user:password@]h1:p1,h2:p2,...          a Redis Cluster, by seed nodes
 *   redis+sentinel://[user:password@]s1:p1,s2:p2,.../MASTER  a primary found through Sentinel
 *
 * with `rediss+…` for TLS. Pure parsing, no I/O: what the URL says, or an error saying what is
 * wrong with it (never repeating the password).
 */

export type HostPort = { host: string; port: number };

type Auth = { username?: string; password?: string; tls: boolean };

export type RedisTarget =
  | ({ kind: 'single'; url: string } & Auth)
  | ({ kind: 'cluster'; nodes: HostPort[] } & Auth)
  | ({
      kind: 'sentinel';
      sentinels: HostPort[];
      masterName: string;
      /** Sentinels with a password of their own (`?sentinelPassword=`); by default none. */
      sentinelUsername?: string;
      sentinelPassword?: string;
    } & Auth);

export class RedisUrlError extends Error {
  override name = 'RedisUrlError';
}

export const REDIS_URL_FORMS =
  'redis://host:port, rediss://host:port, redis+cluster://host1:port1,host2:port2,... ' +
  'or redis+sentinel://sentinel1:port1,sentinel2:port2,.../MASTER_NAME (rediss+… for TLS)';

const DEFAULT_PORT = { single: 6379, cluster: 6379, sentinel: 26379 } as const;

/** Parses REDIS_URL; throws RedisUrlError saying what is wrong. */
export function parseRedisUrl(raw: string): RedisTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (!scheme) throw new RedisUrlError(`not a URL; expected ${REDIS_URL_FORMS}`);
  const match = /^(rediss?)(?:\+(cluster|sentinel))?$/.exec(scheme);
  if (!match) throw new RedisUrlError(`unknown scheme "${scheme}://"; expected ${REDIS_URL_FORMS}`);
  const tls = match[1] === 'rediss';
  const kind = (match[2] ?? 'single') as 'single' | 'cluster' | 'sentinel';
  if (kind === 'single') return parseSingle(raw, tls);

  // Not parsed with `new URL`: a list of host:port pairs is no valid URL authority.
  const rest = raw.slice(scheme.length + 3);
  const parts = /^(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(rest);
  if (!parts) throw new RedisUrlError(`cannot be parsed; expected ${REDIS_URL_FORMS}`);
  const [, userinfo, hostList = '', path = '', query = ''] = parts;
  const auth = { ...parseUserinfo(userinfo), tls };
  const hosts = parseHosts(
    hostList,
    DEFAULT_PORT[kind],
    kind === 'cluster' ? 'seed node' : 'sentinel',
  );
  const params = new URLSearchParams(query.slice(1));

  if (kind === 'cluster') {
    if (path && path !== '/')
      throw new RedisUrlError(
        'a Redis Cluster URL has no path (a cluster has only database 0; a password holding "/" must be written %2F)',
      );
    rejectUnknownParams(params, []);
    return { kind, nodes: hosts, ...auth };
  }

  const masterName = decode(path.replace(/^\//, ''), 'master name');
  if (!masterName)
    throw new RedisUrlError(
      'names no master: add the name Sentinel monitors it by after the sentinels, e.g. redis+sentinel://s1:26379,s2:26379/mymaster',
    );
  if (masterName.includes('/') || /\s/.test(masterName))
    throw new RedisUrlError(
      'the master name has a "/" or a space (a password holding "/" must be written %2F)',
    );
  rejectUnknownParams(params, ['sentinelUsername', 'sentinelPassword']);
  const sentinelUsername = params.get('sentinelUsername') ?? undefined;
  const sentinelPassword = params.get('sentinelPassword') ?? undefined;
  return {
    kind,
    sentinels: hosts,
    masterName,
    ...auth,
    ...(sentinelUsername ? { sentinelUsername } : {}),
    ...(sentinelPassword ? { sentinelPassword } : {}),
  };
}

function parseSingle(raw: string, tls: boolean): RedisTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RedisUrlError(`cannot be parsed; expected ${REDIS_URL_FORMS}`);
  }
  if (url.hostname.includes(',') || url.host.includes(','))
    throw new RedisUrlError(
      'lists several hosts: use redis+cluster:// for a Redis Cluster or redis+sentinel://…/MASTER_NAME for Sentinel',
    );
  if (!url.hostname) throw new RedisUrlError('names no host');
  if (url.pathname && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname))
    throw new RedisUrlError('the path must be a database number like /0');
  const username = url.username ? decode(url.username, 'user name') : undefined;
  const password = url.password ? decode(url.password, 'password') : undefined;
  return {
    kind: 'single',
    url: raw,
    tls,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  };
}

/** `user:password`, `:password` (no user, as `requirepass`) or nothing. */
function parseUserinfo(userinfo: string | undefined): { username?: string; password?: string } {
  if (!userinfo) return {};
  const colon = userinfo.indexOf(':');
  const username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), 'user name');
  const password = colon === -1 ? '' : decode(userinfo.slice(colon + 1), 'password');
  return { ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

function parseHosts(list: string, defaultPort: number, what: string): HostPort[] {
  if (!list) throw new RedisUrlError(`names no ${what}: list host:port pairs separated by ","`);
  const hosts = list.split(',').map((item) => {
    const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d*))?$/i.exec(item);
    if (!m?.[1])
      throw new RedisUrlError(
        `a ${what} is not host:port (a password holding "/", "@", "," or ":" must be percent-encoded)`,
      );
    const port = m[2] === undefined ? defaultPort : Number(m[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65_535 || m[2] === '')
      throw new RedisUrlError(`a ${what} has no valid port (1 to 65535)`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
  const seen = new Set<string>();
  for (const h of hosts) {
    const key = `${h.host}:${h.port}`;
    if (seen.has(key)) throw new RedisUrlError(`lists ${what} ${key} twice`);
    seen.add(key);
  }
  return hosts;
}

function rejectUnknownParams(params: URLSearchParams, known: string[]) {
  for (const name of params.keys())
    if (!known.includes(name))
      throw new RedisUrlError(
        `unknown parameter "${name}"${known.length ? ` (known: ${known.join(', ')})` : ''}`,
      );
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`the ${what} has a bad %-escape`);
  }
}

/** The URL with its passwords replaced by "***", fit for logs and error messages. */
export function redactRedisUrl(raw: string): string {
  return raw
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@')
    .replace(/([?&]sentinelPassword=)[^&#]*/g, '$1***');
}

/** Where it points, without secrets: "Redis Cluster via 127.0.0.1:7000,127.0.0.1:7001". */
export function describeRedisTarget(target: RedisTarget): string {
  const list = (hosts: HostPort[]) =>
    hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',');
  switch (target.kind) {
    case 'single':
      return `Redis at ${redactRedisUrl(target.url)}`;
    case 'cluster':
      return `Redis Cluster via ${list(target.nodes)}`;
    case 'sentinel':
      return `Redis primary "${target.masterName}" via Sentinel ${list(target.sentinels)}`;
  }
}
