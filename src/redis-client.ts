import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { countConnectionError } from './connection-errors.ts';
import type { Logger } from './log.ts';
import { assertSentinelInternals, SentinelReconnector } from './redis-sentinel-fix.ts';
import { describeRedisTarget, type HostPort, type RedisTarget } from './redis-url.ts';

/**
 * The one place Redis connections are made, for every topology REDIS_URL names (redis-url.ts):
 * an ioredis `Redis` for one server or for a primary found through Sentinel, an ioredis
 * `Cluster` for a Redis Cluster. BullMQ takes either; our own keys share the queue prefix's hash
 * tag, so multi-key scripts and MULTI stay in one slot.
 *
 * Workers block on Redis and wait out an outage or a failover (BullMQ requires
 * `maxRetriesPerRequest: null` for them, and queues commands while disconnected); producers (the
 * CLI, the dashboard) fail fast instead of queueing commands while Redis is away.
 */
export type RedisClient = Redis | Cluster;
export type RedisRole = 'worker' | 'producer';

/** Reconnect forever, backing off to 5 s: an outage or a failover must never end the process. */
const backoff = (attempt: number) => Math.min(attempt * 200, 5_000);

export function createRedisClient(
  target: RedisTarget,
  role: RedisRole,
  logger: Logger,
  /** The queue's key prefix: its slot is the one whose master matters. */
  prefix: string,
): RedisClient {
  const perCommand: RedisOptions = {
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    connectionName: `audit-sweeper-${role}`,
    connectTimeout: 5_000,
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.tls ? { tls: {} } : {}),
  };
  const offline = { enableOfflineQueue: role === 'worker' };
  // Producers connect explicitly (connectRedis) so that their first command cannot fail merely
  // because the connection is still being made.
  const lazyConnect = role === 'producer';
  let client: RedisClient;
  switch (target.kind) {
    case 'single':
      client = new Redis(target.url, {
        ...perCommand,
        ...offline,
        retryStrategy: backoff,
        lazyConnect,
      });
      break;
    case 'cluster': {
      const options: ClusterOptions = {
        ...offline,
        lazyConnect,
        clusterRetryStrategy: backoff,
        // A failover takes cluster-node-timeout plus an election (a few seconds): retry a
        // command bounced by the dead master for that long instead of failing it at once.
        retryDelayOnFailover: 300,
        retryDelayOnClusterDown: 300,
        retryDelayOnTryAgain: 300,
        maxRedirections: 32,
        slotsRefreshTimeout: 2_000,
        redisOptions: perCommand,
        // TLS certificates name hosts, not the addresses a cluster gossips (ElastiCache).
        ...(target.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
      };
      client = new Cluster(target.nodes, options);
      break;
    }
    case 'sentinel':
      // Fails loudly (at start: this is where every sentinel client is made) if an ioredis
      // upgrade changed what the fix relies on.
      assertSentinelInternals();
      client = new Redis({
        ...perCommand,
        ...offline,
        lazyConnect,
        sentinels: target.sentinels,
        // ioredis types a Connector's options as unknown; it passes them as given here.
        Connector: SentinelReconnector as unknown as NonNullable<RedisOptions['Connector']>,
        name: target.masterName,
        role: 'master',
        retryStrategy: backoff,
        sentinelRetryStrategy: backoff,
        // Subscribes to +switch-master on the sentinels and reconnects to the new primary at
        // once, instead of waiting for the old one's socket to time out.
        failoverDetector: true,
        // A primary demoted to replica answers writes with READONLY: find the new primary.
        reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
        ...(target.sentinelUsername ? { sentinelUsername: target.sentinelUsername } : {}),
        ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
        ...(target.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      });
      break;
  }
  const probe = () => client.exists(`${prefix}:ping`);
  watchers.set(client, { probe, down: watchRedis(client, target, logger, probe) });
  return client;
}

/**
 * Logs Redis trouble once per change of state, not once per error: while a primary is down,
 * ioredis reports every reconnect attempt and every bounced command, with messages that differ
 * each time ("retrying after 30ms", "MOVED 1463 …"). One warning when it becomes unavailable,
 * one info line (with how long it took) when it answers again.
 */
function watchRedis(
  client: RedisClient,
  target: RedisTarget,
  logger: Logger,
  probe: () => Promise<unknown>,
) {
  let downSince: number | undefined;
  let probing: NodeJS.Timeout | undefined;
  const where = describeRedisTarget(target);
  const up = () => {
    if (downSince === undefined) return;
    logger.info(
      { redis: where, unavailableMs: Date.now() - downSince },
      'Redis connection restored',
    );
    downSince = undefined;
    clearInterval(probing);
    probing = undefined;
  };
  const down = (err: Error) => {
    countConnectionError('redis');
    if (downSince !== undefined) {
      logger.debug({ err: err.message }, 'Redis still unavailable');
      return;
    }
    downSince = Date.now();
    logger.warn({ err, redis: where }, 'Redis connection error');
    // A Cluster emits no event when a promoted replica takes over a slot: ask until it answers.
    probing = setInterval(() => {
      if (client.status === 'end') return clearInterval(probing);
      probe().then(up, () => {});
    }, 1_000);
    probing.unref();
  };
  client.on('error', down);
  client.on('ready', up);
  // A Cluster reports a dead master only as a node error; its commands wait for the failover.
  client.on('node error', (err: Error, address: string) => {
    if (downSince === undefined) down(new Error(`cluster node ${address}: ${err.message}`));
  });
  return down;
}

const watchers = new WeakMap<
  RedisClient,
  { probe: () => Promise<unknown>; down: (err: Error) => void }
>();

/**
 * An error seen by something using `client` (a BullMQ worker, a command): counted as Redis
 * being unavailable, so it is logged only if Redis was thought available until now.
 */
export function redisTrouble(client: RedisClient, err: Error): void {
  watchers.get(client)?.down(err);
}

/**
 * Does Redis answer for the queue's keys (readiness)? On a Cluster, PING goes to any node; a read
 * of a key under the queue prefix goes to the master of the prefix's slot, the one that matters.
 */
export async function pingRedis(client: RedisClient): Promise<void> {
  const probe = watchers.get(client)?.probe;
  await (probe ? probe() : client.ping());
}

/** A producer connection, connected: fails at once with a clear error if Redis does not answer. */
export async function connectRedis(
  target: RedisTarget,
  logger: Logger,
  prefix: string,
): Promise<RedisClient> {
  const client = createRedisClient(target, 'producer', logger, prefix);
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw new Error(
      `cannot reach ${describeRedisTarget(target)} (check REDIS_URL): ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return client;
}

// ---- start-up check of the topology ---------------------------------------------------------

/** REDIS_URL names the wrong kind of server: exit code 2, one line saying what to set. */
export class RedisSetupError extends Error {
  override name = 'RedisSetupError';
}

type Probe = (node: HostPort, args: string[]) => Promise<unknown>;

/**
 * One command on a short-lived, non-retrying connection (not a cluster or sentinel client), with
 * the credentials of a data node, or of a sentinel (which may have its own).
 */
function probeWith(target: RedisTarget, kind: 'data' | 'sentinel' = 'data'): Probe {
  return async (node, args) => {
    const sentinel = target.kind === 'sentinel' && kind === 'sentinel';
    const client = new Redis({
      host: node.host,
      port: node.port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 3_000,
      // A server that takes the connection and never answers (blackholed) is an outage too.
      commandTimeout: 3_000,
      ...(sentinel
        ? {
            ...(target.sentinelUsername ? { username: target.sentinelUsername } : {}),
            ...(target.sentinelPassword ? { password: target.sentinelPassword } : {}),
          }
        : {
            ...(target.username ? { username: target.username } : {}),
            ...(target.password ? { password: target.password } : {}),
          }),
      ...(target.tls ? { tls: {} } : {}),
    });
    // ioredis reports a refused AUTH as an 'error' event, then only "Connection is closed".
    let lastError: Error | undefined;
    client.on('error', (err) => {
      lastError = err;
    });
    try {
      await client.connect();
      const [name, ...rest] = args as [string, ...string[]];
      return await client.call(name, ...rest);
    } catch (err) {
      // Wrong or missing credentials are a bad setting, not an outage to wait out.
      const message = `${(err as Error).message} ${lastError?.message ?? ''}`;
      if (/NOAUTH|WRONGPASS|invalid password|invalid username-password/i.test(message))
        throw new RedisSetupError(
          `REDIS_URL: ${sentinel ? 'the sentinel at ' : ''}${node.host}:${node.port} refused the credentials (${(/(NOAUTH|WRONGPASS)[^\n]*/i.exec(message)?.[0] ?? message).trim()}): ${credentialsHint(target, sentinel)}`,
        );
      throw err;
    } finally {
      client.disconnect();
    }
  };
}

/** Which part of REDIS_URL holds the password that a data node or a sentinel refused. */
function credentialsHint(target: RedisTarget, refusedBySentinel: boolean): string {
  if (refusedBySentinel) return 'set ?sentinelPassword= (and &sentinelUsername=) in REDIS_URL';
  const hint = 'set user:password@ in REDIS_URL';
  return target.kind === 'sentinel'
    ? `${hint} (the data nodes' password; the sentinels' own goes in ?sentinelPassword=)`
    : hint;
}

const field = (info: string, name: string) =>
  new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();

/**
 * Checks that REDIS_URL's scheme matches what answers there, before any BullMQ client is made:
 * a plain URL at a cluster node gets MOVED for most keys, one at a replica READONLY, and a wrong
 * master name keeps a Sentinel client retrying forever. Throws RedisSetupError saying what to
 * set; throws a plain Error when nothing answers at all (an outage, not a bad setting).
 * Returns warnings worth logging (e.g. an eviction policy that may drop queue keys).
 */
export async function checkRedisTopology(target: RedisTarget): Promise<string[]> {
  const probe = probeWith(target);
  switch (target.kind) {
    case 'single': {
      const url = new URL(target.url);
      const node = { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) };
      const info = String(await probe(node, ['INFO']));
      const here = `${node.host}:${node.port}`;
      if (field(info, 'redis_mode') === 'sentinel')
        throw new RedisSetupError(
          `REDIS_URL points at a Sentinel (${here}), not at Redis: set REDIS_URL=redis+sentinel://${here}/MASTER_NAME (list every sentinel, comma-separated)`,
        );
      if (field(info, 'cluster_enabled') === '1')
        throw new RedisSetupError(
          `REDIS_URL points at one node of a Redis Cluster (${here}): set REDIS_URL=redis+cluster://${here},... listing cluster nodes, so that keys are sent to the node that owns them`,
        );
      if (field(info, 'role') === 'slave')
        throw new RedisSetupError(
          `REDIS_URL points at a read-only replica (${here}, replica of ${field(info, 'master_host')}:${field(info, 'master_port')}): point it at the primary, or set REDIS_URL=redis+sentinel://SENTINEL:26379,.../MASTER_NAME if Sentinel manages it`,
        );
      return evictionWarnings(info);
    }
    case 'cluster': {
      const { info, node } = await firstAnswer(target.nodes, (n) => probe(n, ['INFO']));
      if (field(String(info), 'cluster_enabled') !== '1')
        throw new RedisSetupError(
          `REDIS_URL uses redis+cluster:// but ${node.host}:${node.port} is not a Redis Cluster node (cluster_enabled:0): set REDIS_URL=redis://${node.host}:${node.port} for a single server`,
        );
      return evictionWarnings(String(info));
    }
    case 'sentinel': {
      const ask = probeWith(target, 'sentinel');
      const answers = await Promise.allSettled(
        target.sentinels.map((s) =>
          ask(s, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', target.masterName]),
        ),
      );
      const list = target.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
      const primary = answers.find((a) => a.status === 'fulfilled' && a.value !== null);
      if (primary?.status === 'fulfilled') return primaryWarnings(primary.value, probe);
      const errors = answers.flatMap((a) =>
        a.status === 'rejected' ? [String(a.reason?.message ?? a.reason)] : [],
      );
      const refused = answers.find(
        (a) => a.status === 'rejected' && a.reason instanceof RedisSetupError,
      );
      if (refused?.status === 'rejected') throw refused.reason;
      if (errors.length === answers.length) {
        if (errors.some((e) => /unknown command/i.test(e)))
          throw new RedisSetupError(
            `REDIS_URL uses redis+sentinel:// but ${list} is not a Sentinel (it does not know SENTINEL commands): set REDIS_URL=redis://HOST:PORT for a single server`,
          );
        throw new Error(`no Sentinel of REDIS_URL answers (${list}): ${errors[0]}`);
      }
      const names = await Promise.any(target.sentinels.map((s) => ask(s, ['SENTINEL', 'MASTERS'])))
        .then((masters) => (masters as string[][]).map((m) => m[m.indexOf('name') + 1]))
        .catch(() => [] as string[]);
      throw new RedisSetupError(
        `REDIS_URL names master "${target.masterName}", which no Sentinel at ${list} monitors${names.length ? ` (they monitor: ${names.join(', ')})` : ''}: put the monitored name after the sentinels, e.g. redis+sentinel://${list}/${names[0] ?? 'mymaster'}`,
      );
    }
  }
}

/**
 * The primary the sentinels named, asked with the data nodes' credentials: a wrong password
 * there would otherwise keep every client retrying AUTH for ever, since the sentinels took
 * theirs. A primary that does not answer is an outage (a failover may be under way), not a bad
 * setting: nothing to say then.
 */
async function primaryWarnings(address: unknown, probe: Probe): Promise<string[]> {
  const [host, port] = address as [string, string];
  try {
    return evictionWarnings(String(await probe({ host, port: Number(port) }, ['INFO'])));
  } catch (err) {
    if (err instanceof RedisSetupError) throw err;
    return [];
  }
}

async function firstAnswer<T>(nodes: HostPort[], ask: (node: HostPort) => Promise<T>) {
  let last: unknown;
  for (const node of nodes) {
    try {
      return { info: await ask(node), node };
    } catch (err) {
      // Credentials are the cluster's: one node refusing them is the answer.
      if (err instanceof RedisSetupError) throw err;
      last = err;
    }
  }
  throw new Error(
    `no node of REDIS_URL answers (${nodes.map((n) => `${n.host}:${n.port}`).join(',')}): ${(last as Error)?.message}`,
  );
}

function evictionWarnings(info: string): string[] {
  const policy = field(info, 'maxmemory_policy');
  return policy && policy !== 'noeviction'
    ? [
        `Redis maxmemory-policy is ${policy}: set it to noeviction, or Redis may delete queue keys under memory pressure`,
      ]
    : [];
}
