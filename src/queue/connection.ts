import { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import { redactUrl } from '../secrets.ts';

/**
 * Workers block on Redis and must wait out an outage (BullMQ requires
 * `maxRetriesPerRequest: null` for them); producers such as the CLI and the dashboard should fail
 * fast instead of queueing commands while Redis is away.
 */
export function createRedis(url: string, role: 'worker' | 'producer', logger: Logger): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    enableOfflineQueue: role === 'worker',
    // Reconnect forever, backing off to 5 s: an outage must never end the process.
    retryStrategy: (attempt) => Math.min(attempt * 200, 5_000),
    connectionName: `audit-sweeper-${role}`,
    // Producers connect explicitly (connectProducer) so that their first command cannot fail
    // merely because the connection is still being made.
    lazyConnect: role === 'producer',
  });
  let lastError = '';
  redis.on('error', (err) => {
    // ioredis repeats the same error on every reconnect attempt; log each new one once.
    if (err.message !== lastError) logger.warn({ err }, 'Redis connection error');
    lastError = err.message;
  });
  redis.on('ready', () => {
    if (lastError) logger.info('Redis connection restored');
    lastError = '';
  });
  return redis;
}

/** A producer connection, connected: fails at once with a clear error if Redis does not answer. */
export async function connectProducer(url: string, logger: Logger): Promise<Redis> {
  const redis = createRedis(url, 'producer', logger);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(
      `cannot reach Redis at ${redactUrl(url)} (check REDIS_URL): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return redis;
}
