import { type Request, type Response, Router } from 'express';
import { isCancelledStatement, isTransientDatabaseError } from '../src/db/pool.ts';
import { formatDuration } from '../src/duration.ts';
import type { Logger } from '../src/log.ts';
import { InvalidInputError } from '../src/store/errors.ts';
import type { AuditLogStore } from '../src/store/store.ts';
import type { Entry, ListQuery } from '../src/store/types.ts';
import { RETRY_AFTER_SECONDS } from './admission.ts';
import type { WireEntry } from './audit-log-wire.ts';
import { sendError } from './errors.ts';

/** The API's parameter for each field the store names in its InvalidInputError. */
export const PARAMETER_OF_FIELD: Record<string, string> = {
  startTime: 'start_time',
  endTime: 'end_time',
  order: 'sort',
  limit: 'limit',
  pageToken: 'page_token',
};
const PARAMETERS = new Set(Object.values(PARAMETER_OF_FIELD));

/** The response header that tells clients how far behind "now" the log is served. */
export const SAFETY_MARGIN_HEADER = 'Audit-Log-Safety-Margin';

class ParameterError extends Error {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * GET /v1/audit-log: completed entries ordered by (time_completed, id), one page at a time.
 * The store validates and clamps; this layer only maps query-string text to the store's query
 * and the store's field names back to parameter names, so every 400 names what the client sent.
 */
export function auditLogRouter(deps: {
  store: AuditLogStore;
  safetyMarginMs: number;
  logger: Logger;
}): Router {
  const router = Router();
  const margin = formatDuration(deps.safetyMarginMs);
  router.get('/v1/audit-log', async (req: Request, res: Response) => {
    res.set(SAFETY_MARGIN_HEADER, margin).set('Cache-Control', 'no-store');
    try {
      const page = await deps.store.list(toListQuery(req.query));
      res.json({ items: page.items.map(toWire), next_page_token: page.nextPageToken });
    } catch (err) {
      if (err instanceof ParameterError) {
        sendError(res, 400, err.message, err.parameter);
      } else if (err instanceof InvalidInputError) {
        const message = err.message.replace(`${err.field}: `, '');
        sendError(res, 400, toParameterNames(message), PARAMETER_OF_FIELD[err.field] ?? err.field);
      } else if (isTransientDatabaseError(err) || isCancelledStatement(err)) {
        // A query past API_STATEMENT_TIMEOUT, or a database that is away: retry later. The
        // details (SQL, addresses) stay in the log.
        deps.logger.warn({ err }, 'audit-log API query failed');
        res.set('Retry-After', String(RETRY_AFTER_SECONDS));
        sendError(res, 503, 'the audit log cannot be read right now; retry later');
      } else {
        throw err;
      }
    }
  });
  return router;
}

/** The store's messages may mention other fields ("must be later than startTime"). */
function toParameterNames(message: string): string {
  return message.replace(/\b(startTime|endTime|pageToken)\b/g, (f) => PARAMETER_OF_FIELD[f] ?? f);
}

function toListQuery(query: Request['query']): ListQuery {
  const values: Record<string, string> = {};
  for (const [name, value] of Object.entries(query)) {
    if (!PARAMETERS.has(name)) {
      throw new ParameterError(name, `unknown parameter; accepted: ${[...PARAMETERS].join(', ')}`);
    }
    if (typeof value !== 'string') throw new ParameterError(name, 'must be given once, as text');
    if (value === '') throw new ParameterError(name, 'must not be empty');
    // An unencoded "+01:00" arrives as " 01:00": say so rather than just "not RFC 3339".
    if (name.endsWith('_time') && / \d{2}:\d{2}$/.test(value)) {
      throw new ParameterError(name, 'has a space: a "+" in a query string must be sent as %2B');
    }
    values[name] = value;
  }
  if (values.start_time === undefined) throw new ParameterError('start_time', 'is required');
  const limit = values.limit;
  // Plain digits only: Number() would also read "1e3", "0x10" or " 5".
  if (limit !== undefined && !/^\d{1,4}$/.test(limit)) {
    throw new ParameterError('limit', 'must be a whole number from 1 to 1000');
  }
  return {
    startTime: values.start_time,
    endTime: values.end_time ?? null,
    order: values.sort as ListQuery['order'],
    limit: limit === undefined ? undefined : Number(limit),
    pageToken: values.page_token ?? null,
  };
}

/**
 * An entry as the API shows it: the same fields in snake_case, like the query parameters
 * (the shape its OpenAPI document gives, checked against real answers by the tests).
 */
function toWire(entry: Entry): WireEntry {
  return snakeCase(entry) as WireEntry;
}

/** camelCase -> snake_case per key name, computed once: this runs for every field of a page. */
const SNAKE = new Map<string, string>();
const snakeKey = (key: string) => {
  let snake = SNAKE.get(key);
  if (snake === undefined) {
    snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    SNAKE.set(key, snake);
  }
  return snake;
};

// A plain loop: with Object.entries/fromEntries and a regex per key, this conversion took about
// a quarter of the dashboard's CPU time under API load (measured with --cpu-prof).
function snakeCase(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCase);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key in value) out[snakeKey(key)] = snakeCase((value as Record<string, unknown>)[key]);
  return out;
}
