import type { NextFunction, Request, Response } from 'express';
import { isTransientDatabaseError } from '../src/db/pool.ts';
import type { Logger } from '../src/log.ts';
import { RepeatedErrors } from '../src/log-repeats.ts';

/** Every error the dashboard sends: `{"error": {"message", "parameter"?}}`. */
export function sendError(res: Response, status: number, message: string, parameter?: string) {
  res.status(status).json({ error: parameter ? { parameter, message } : { message } });
}

/** Unknown paths under the base path: JSON, like every other answer of the API. */
export function notFound(_req: Request, res: Response) {
  sendError(res, 404, 'not found');
}

/**
 * The last handler: logs what went wrong and answers without it. Database and Redis messages
 * can carry SQL, table names or addresses, none of which a client needs; the log has them.
 * A database or Redis that is away is a 503 (retry later), logged once per path and change of
 * state (`recoveries`, mounted first, sees the successes that end a streak); anything else a 500.
 */
export function errorHandler(logger: Logger) {
  // An outage fails every refresh of every open page: one line per path and change of state.
  const repeats = new RepeatedErrors(logger);
  const topic = (req: Request) => `requests to ${req.originalUrl.split('?')[0]}`;
  const recoveries = (req: Request, res: Response, next: NextFunction) => {
    res.on('finish', () => {
      if (res.statusCode < 400) repeats.succeeded(topic(req));
    });
    next();
  };
  const handler = (err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const status = (err as { status?: unknown }).status;
    // Errors express itself raises for a bad request (a malformed body or URL) are the client's.
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendError(res, status, (err as Error).message);
      return;
    }
    if (isUnavailable(err)) {
      const message = err instanceof Error ? err.message : String(err);
      repeats.failed(
        topic(req),
        message,
        { method: req.method, url: req.originalUrl },
        'request failed',
      );
      sendError(res, 503, 'a backing service is unavailable; retry later');
      return;
    }
    logger.error({ err, method: req.method, url: req.originalUrl }, 'request failed');
    sendError(res, 500, 'internal error');
  };
  return { recoveries, handler };
}

function isUnavailable(err: unknown): boolean {
  if (isTransientDatabaseError(err)) return true;
  const message = err instanceof Error ? err.message : '';
  // ioredis with the offline queue off, or a connection being re-made; a Redis Cluster client
  // still (re)learning its slots, or its masters failing over.
  return /Stream isn't writeable|Connection is closed|max retries per request|isn't ready and enableOfflineQueue|Cluster isn't ready|CLUSTERDOWN|Too many Cluster redirections|Failed to refresh slots cache/i.test(
    message,
  );
}
