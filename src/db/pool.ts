import pg from 'pg';
import { countConnectionError } from '../connection-errors.ts';
import type { Logger } from '../log.ts';

export type Pool = pg.Pool;

/**
 * A pool that survives the database going away: an idle client's error is logged instead of
 * crashing the process (pg emits it on the pool), and the next query opens a fresh connection.
 */
export function createPool(
  connectionString: string,
  logger: Logger,
  options: {
    max?: number;
    applicationName?: string;
    statementTimeoutMs?: number;
    lockTimeoutMs?: number;
    /**
     * Named statements get one generic plan per connection instead of a plan per call (see
     * listCompleted): for the audit-log API, whose page on a time-partitioned log would
     * otherwise be planned across every partition at each request.
     */
    genericPlans?: boolean;
  } = {},
): Pool {
  const pool = new NamedErrorsPool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'audit-sweeper',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // Set by the server for every statement of the session: it bounds lock waits too.
    ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    ...(options.lockTimeoutMs ? { lock_timeout: options.lockTimeoutMs } : {}),
    ...(options.genericPlans ? { options: '-c plan_cache_mode=force_generic_plan' } : {}),
  });
  pool.on('error', (err) => {
    countConnectionError('postgres');
    logger.warn({ err }, 'idle PostgreSQL connection failed');
  });
  return pool;
}

/**
 * The one connection of a readiness check (src/http/probes.ts), apart from every other pool:
 * probes never wait for the connections that serve pages, the API or the sweep, nor hold them.
 */
export const createReadinessPool = (connectionString: string, logger: Logger): Pool =>
  createPool(connectionString, logger, {
    max: 1,
    applicationName: 'audit-sweeper readiness',
    statementTimeoutMs: 2_000,
  });

/**
 * Says which server and setting a connection error is about: a bare "connect ECONNREFUSED
 * 127.0.0.1:5432" (from a worker that also talks to Redis) does not. Changes the error in place,
 * keeping its code, so isTransientDatabaseError still recognizes it.
 */
export function nameConnectionError(err: unknown, connectionString: string | undefined): unknown {
  if (!(err instanceof Error) || err.message.startsWith('PostgreSQL')) return err;
  let where = 'PostgreSQL';
  try {
    const url = new URL(connectionString ?? '');
    where = `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}`;
  } catch {
    // Not a URL (cannot happen after config validation): name the server only.
  }
  err.message = `${where} is unreachable or refused the connection (check DATABASE_URL): ${err.message}`;
  return err;
}

/** A pool whose connection errors name PostgreSQL and DATABASE_URL (nameConnectionError). */
class NamedErrorsPool extends pg.Pool {
  // pg.Pool.connect has a callback form (used by pool.query) and a promise form.
  // biome-ignore lint/suspicious/noExplicitAny: forwards both of pg's overloads unchanged.
  override connect(...args: any[]): any {
    const cs = this.options.connectionString;
    const cb = args[0];
    if (typeof cb === 'function')
      return super.connect((err, client, done) => {
        if (err) countConnectionError('postgres');
        cb(err ? nameConnectionError(err, cs) : err, client, done);
      });
    return super.connect().catch((err: unknown) => {
      countConnectionError('postgres');
      throw nameConnectionError(err, cs);
    });
  }
}

/** True for errors that a retry can cure: lost connections, shutdowns, deadlocks, overload. */
export function isTransientDatabaseError(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  // node-pg's own errors for a dropped or unreachable server carry no code.
  if (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect/.test(message)
  )
    return true;
  if (typeof code !== 'string') return false;
  if (/^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|ENOTFOUND|EAI_AGAIN)$/.test(code)) return true;
  // 08: connection exception; 40001/40P01: serialization failure, deadlock; 53: out of resources;
  // 57P01..57P03: admin shutdown, crash shutdown, cannot connect now.
  return /^(08...|40001|40P01|53...|57P0[123])$/.test(code);
}

/** A statement cancelled by statement_timeout (or by an operator's pg_cancel_backend). */
export const isCancelledStatement = (err: unknown) =>
  (err as { code?: unknown } | null)?.code === '57014';

/** A lock not granted within lock_timeout (55P03: lock_not_available). */
export const isLockTimeout = (err: unknown) => (err as { code?: unknown } | null)?.code === '55P03';
