import type { Logger } from './log.ts';

/**
 * The process-wide last resort for errors nothing awaited. Every known path awaits or catches
 * its promises; this is for the ones a library makes behind our back (ioredis's cluster
 * redirections, a BullMQ timer) and for the path nobody has found yet. Node's default ends the
 * process on an unhandled rejection: for a worker that is the wrong answer to Redis or
 * PostgreSQL being away, which the product otherwise rides out (jobs retry, the lock expires,
 * the connection comes back). Anything else is a bug whose state cannot be trusted: logged,
 * then the process exits 1 so that its supervisor restarts it.
 */

/** An error from a store being away or failing over, rather than from our own code. */
export function isStoreOutage(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  const {
    code,
    message = '',
    name = '',
  } = err as { code?: unknown; message?: string; name?: string };
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || PG_UNAVAILABLE.test(code)))
    return true;
  if (name === 'ClusterAllFailedError' || name === 'MaxRetriesPerRequestError') return true;
  if (STORE_AWAY.test(String(message))) return true;
  const nested = [
    (err as { cause?: unknown }).cause,
    (err as { lastNodeError?: unknown }).lastNodeError,
    ...(((err as { errors?: unknown }).errors as unknown[] | undefined) ?? []),
  ];
  return nested.some((e) => isStoreOutage(e, depth + 1));
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** PostgreSQL's connection exceptions (08) and shutdowns (57P01-57P03). */
const PG_UNAVAILABLE = /^(08...|57P0[123])$/;
/** What ioredis and pg say when their server is away, failing over or refusing for a while. */
const STORE_AWAY =
  /CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY|Too many Cluster redirections|Failed to refresh slots cache|Connection is closed|Stream isn't writeable|max retries per request|Connection terminated|connection timeout|timeout exceeded when trying to connect|the database system is (starting up|shutting down|in recovery)/i;

/** Installs the handlers once per process; `exit` is process.exit, replaceable in tests. */
export function installLastResort(
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  if (installed) return;
  installed = true;
  const seen = new Map<string, number>();
  const handle = (err: unknown, origin: string) => {
    if (isStoreOutage(err)) {
      // Once per kind of error, with a count: an outage can raise one a second for minutes.
      const key = `${origin}:${err instanceof Error ? `${err.name}:${err.message}` : String(err)}`;
      const count = (seen.get(key) ?? 0) + 1;
      seen.set(key, count);
      if (count === 1 || count % 100 === 0)
        logger.warn(
          { err, origin, repeated: count },
          `${origin} from Redis or PostgreSQL being away; the process stays up and recovers when it answers`,
        );
      return;
    }
    logger.fatal({ err, origin }, `${origin}: exiting so that the process is restarted clean`);
    exit(1);
  };
  process.on('unhandledRejection', (reason) => handle(reason, 'unhandled rejection'));
  process.on('uncaughtException', (err) => handle(err, 'uncaught exception'));
}

let installed = false;
