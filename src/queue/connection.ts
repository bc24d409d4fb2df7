import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import {
  checkRedisTopology,
  connectRedis,
  createRedisClient,
  type RedisClient,
  RedisSetupError,
} from '../redis-client.ts';
import { describeRedisTarget, parseRedisUrl } from '../redis-url.ts';

export type { RedisClient } from '../redis-client.ts';

type RedisSettings = Pick<Config, 'REDIS_URL' | 'QUEUE_PREFIX'>;

/**
 * Every Redis connection of the product comes from here (the topology is REDIS_URL's scheme,
 * see src/redis-client.ts). Workers block on Redis and must wait out an outage or a failover;
 * producers such as the CLI and the dashboard fail fast instead.
 */
export function createRedis(config: RedisSettings, role: 'worker' | 'producer', logger: Logger) {
  return createRedisClient(parseRedisUrl(config.REDIS_URL), role, logger, config.QUEUE_PREFIX);
}

/**
 * A producer connection, connected, after checking that REDIS_URL's scheme fits what answers
 * there (RedisSetupError otherwise: exit code 2). Fails at once if Redis does not answer.
 */
export async function connectProducer(config: RedisSettings, logger: Logger): Promise<RedisClient> {
  const target = parseRedisUrl(config.REDIS_URL);
  try {
    for (const warning of await checkRedisTopology(target)) logger.warn(warning);
  } catch (err) {
    if (err instanceof RedisSetupError) throw err;
    // Nothing answers: say where and which setting to check, not a bare "Connection is closed."
    throw new Error(
      `cannot reach ${describeRedisTarget(target)} (check REDIS_URL): ${errorMessage(err)}`,
      { cause: err },
    );
  }
  return connectRedis(target, logger, config.QUEUE_PREFIX);
}

/**
 * The same check for a worker, which must wait out a Redis that is not up yet: retries while
 * nothing answers (logging that once), throws RedisSetupError at once on a wrong topology.
 */
export async function checkRedisForWorker(
  config: RedisSettings,
  logger: Logger,
  /** A worker closed before Redis answered stops waiting (its timers would keep it alive). */
  signal?: AbortSignal,
): Promise<void> {
  const target = parseRedisUrl(config.REDIS_URL);
  let logged = false;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      for (const warning of await checkRedisTopology(target)) logger.warn(warning);
      if (logged) logger.info('Redis answers; starting');
      return;
    } catch (err) {
      if (err instanceof RedisSetupError) throw err;
      if (!logged) logger.warn({ err }, 'Redis does not answer yet; waiting for it');
      logged = true;
      await sleep(Math.min(attempt * 200, 5_000), undefined, { signal });
    }
  }
}

/**
 * One look, before a worker opens its probes: a REDIS_URL of the wrong topology is a bad
 * setting (RedisSetupError: one line, exit code 2); a Redis that does not answer yet is an
 * outage, which the worker waits out with its probes up (checkRedisForWorker).
 */
export async function refuseWrongRedisTopology(config: RedisSettings, logger: Logger) {
  try {
    for (const warning of await checkRedisTopology(parseRedisUrl(config.REDIS_URL)))
      logger.warn(warning);
  } catch (err) {
    if (err instanceof RedisSetupError) throw err;
  }
}
