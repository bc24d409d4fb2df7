import type pg from 'pg';

/** A pool or a single client: every statement runs on either. */
export type Queryable = Pick<pg.Pool, 'query'>;

/**
 * Timestamps leave the database as RFC 3339 text with microseconds (a JS Date keeps only
 * milliseconds, and page cursors must be exact).
 */
export const rfc3339 = (expression: string) =>
  `to_char((${expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * The instant `ms` milliseconds before now, by the database clock: the one way every statement
 * says "older than STALE_AFTER" (or RETENTION, or the safety margin).
 */
export const msAgo = (msParameter: string) =>
  `now() - make_interval(secs => ${msParameter}::float8 / 1000)`;
