import { hostname, userInfo } from 'node:os';
import type { Config } from '../config.ts';
import { createLogger } from '../log.ts';
import { parsePauseFor, pause } from '../pause.ts';
import { connectProducer } from '../queue/connection.ts';
import { closeSweepQueue, createSweepQueue } from '../queue/sweep-queue.ts';
import { type OptionValues, UsageError } from './options.ts';

/**
 * `audit-sweeper pause [--for 30m] [--reason TEXT]`: every worker stops before its next chunk
 * (a run under way keeps its place and goes on after `resume`), ticks start no runs, retention
 * waits. The state is in Redis, so it outlives every process; `--for` ends it by itself.
 */
export async function run(config: Config, options: OptionValues): Promise<number> {
  let forMs: number | null = null;
  if (options.for !== undefined) {
    const parsed = parsePauseFor(String(options.for));
    if ('error' in parsed)
      throw new UsageError(
        `--for ${parsed.error} (for longer, pause until \`audit-sweeper resume\`), got "${options.for}"`,
      );
    forMs = parsed.ms;
  }
  const reason = options.reason === undefined ? null : String(options.reason);
  if (reason !== null && reason.length > 500)
    throw new UsageError('--reason must be at most 500 characters');
  const logger = createLogger(config.LOG_LEVEL, 'pause');
  const redis = await connectProducer(config, logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  try {
    const by = `${safeUser()}@${hostname()}`;
    const state = await pause(sq, redis, { by, reason, forMs });
    console.log(
      `sweeper paused by ${state.by}${state.reason ? ` (${state.reason})` : ''}, ${state.until ? `until ${state.until}` : 'until audit-sweeper resume'}; sweeps under way stop before their next chunk`,
    );
    return 0;
  } finally {
    await closeSweepQueue(sq);
    redis.disconnect();
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}
