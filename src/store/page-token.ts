import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidInputError } from './errors.ts';

/**
 * An opaque cursor: the last (time_completed, id) a page returned, bound to the query it came
 * from and signed with HMAC-SHA256, so that a client can neither forge a position nor replay a
 * token against another query.
 */
export type Cursor = { time: string; id: string };
export type QueryBinding = { order: string; startTime: string; endTime: string | null };

const VERSION = 1;
const field = 'pageToken';

export function encodePageToken(key: string, query: QueryBinding, cursor: Cursor): string {
  const body = Buffer.from(JSON.stringify({ v: VERSION, ...query, ...cursor })).toString(
    'base64url',
  );
  return `${body}.${sign(key, body)}`;
}

export function decodePageToken(key: string, query: QueryBinding, token: string): Cursor {
  const [body, signature, extra] = token.split('.');
  if (!body || !signature || extra !== undefined)
    throw new InvalidInputError(field, 'is malformed');
  const expected = Buffer.from(sign(key, body));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    throw new InvalidInputError(field, 'was not issued by this service or has been altered');
  }
  const payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  if (
    payload.v !== VERSION ||
    payload.order !== query.order ||
    payload.startTime !== query.startTime ||
    payload.endTime !== query.endTime
  ) {
    throw new InvalidInputError(
      field,
      'belongs to a different query (sort, start time or end time changed)',
    );
  }
  return { time: payload.time, id: payload.id };
}

function sign(key: string, body: string): string {
  return createHmac('sha256', key).update(body).digest('base64url');
}
