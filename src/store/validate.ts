import { isIP } from 'node:net';
import { z } from 'zod';
import { InvalidInputError } from './errors.ts';
import type { Completion, ListQuery, NewEntry } from './types.ts';

/**
 * Input checks that run before anything reaches the database, so that a caller gets the field
 * and the reason instead of a constraint name. Limits mirror the table's.
 */

const uuid = z.uuid({ error: 'must be a UUID' });
// PostgreSQL text cannot hold NUL; it would fail as a raw database error.
const NO_NUL = /^[^\0]*$/;
const plain = z.string({ error: 'must be a string' }).regex(NO_NUL, {
  error: 'must not contain NUL characters',
});
const text = (max: number) => plain.max(max, { error: `must be at most ${max} characters` });
const required = (max: number) => text(max).min(1, { error: 'must not be empty' });
// Node accepts an IPv6 zone (fe80::1%eth0); PostgreSQL's inet does not.
const ip = z.string().refine((value) => isIP(value) !== 0 && !value.includes('%'), {
  error: 'must be an IPv4 or IPv6 address',
});

/**
 * An instant as UTC RFC 3339 text with microseconds, the precision of time_completed: a bound
 * given as an entry's timeCompleted keeps its exact meaning (a Date alone would cut it to ms).
 */
function toUtcMicros(t: string | Date): string {
  const iso = new Date(t).toISOString();
  const micros = typeof t === 'string' ? (/\.\d{3}(\d{1,3})/.exec(t)?.[1] ?? '') : '';
  return `${iso.slice(0, -1)}${micros.padEnd(3, '0')}Z`;
}

const timestamp = z
  .union([
    z.date().refine((d) => !Number.isNaN(d.getTime()), { error: 'must be a valid date' }),
    z.iso.datetime({ offset: true, error: 'must be an RFC 3339 timestamp with a time zone' }),
  ])
  .transform(toUtcMicros)
  // Outside years 1..9999 the text is not one PostgreSQL reads (0000-, +010000-, -000001-).
  .refine((t) => /^\d{4}-/.test(t) && !t.startsWith('0000-'), {
    error: 'must be between the years 1 and 9999',
  });

const actor = z.discriminatedUnion(
  'kind',
  [
    z.object({ kind: z.literal('user_builtin'), id: uuid }).strict(),
    z.object({ kind: z.literal('silo_user'), id: uuid, siloId: uuid }).strict(),
    z.object({ kind: z.literal('scim'), siloId: uuid }).strict(),
    z.object({ kind: z.literal('unauthenticated') }).strict(),
  ],
  { error: 'kind must be one of user_builtin, silo_user, scim, unauthenticated' },
);

const auth = z.discriminatedUnion(
  'method',
  [
    z.object({ method: z.literal('spoof') }).strict(),
    z
      .object({
        method: z.enum(['session_cookie', 'access_token', 'scim_token']),
        credentialId: uuid,
      })
      .strict(),
  ],
  { error: 'method must be one of session_cookie, access_token, scim_token, spoof' },
);

const newEntry = z.object({
  requestId: required(63),
  requestUri: required(512),
  operationId: required(512),
  sourceIp: ip,
  userAgent: text(256).nullish(),
  actor,
  auth: auth.nullish(),
});

const statusCode = z
  .number()
  .int()
  .min(100, { error: 'must be an HTTP status from 100 to 599' })
  .max(599, {
    error: 'must be an HTTP status from 100 to 599',
  });
const completion = z.discriminatedUnion(
  'kind',
  [
    z.object({ kind: z.literal('success'), httpStatusCode: statusCode }).strict(),
    z
      .object({
        kind: z.literal('error'),
        httpStatusCode: statusCode,
        errorCode: plain.nullish(),
        errorMessage: plain,
      })
      .strict(),
  ],
  { error: 'kind must be success or error (a timeout is only ever written by the sweeper)' },
);

/** The list query as the store validates it; the API's OpenAPI document is generated from it. */
export const listQuerySchema = z
  .object({
    startTime: timestamp,
    endTime: timestamp.nullish(),
    order: z
      .enum(['ascending', 'descending'], { error: 'must be ascending or descending' })
      .default('ascending'),
    limit: z
      .number({ error: 'must be a whole number from 1 to 1000' })
      .int({ error: 'must be a whole number from 1 to 1000' })
      .min(1, { error: 'must be a whole number from 1 to 1000' })
      .max(1000, { error: 'must be a whole number from 1 to 1000' })
      .default(100),
    pageToken: z.string().nullish(),
  })
  // Both are UTC text of one format, so text order is time order, to the microsecond.
  .refine((q) => !q.endTime || q.endTime > q.startTime, {
    path: ['endTime'],
    error: 'must be later than startTime',
  });

function parse<T>(schema: z.ZodType<T>, value: unknown, root: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = [root, ...(issue?.path ?? [])].filter((p) => p !== '').join('.');
  throw new InvalidInputError(field || root, issue?.message ?? 'is invalid');
}

export const parseNewEntry = (value: NewEntry) => parse(newEntry, value, '');
export const parseCompletion = (value: Completion) => parse(completion, value, 'result');
export const parseId = (value: string, field = 'id') => parse(uuid, value, field);
export const parseListQuery = (value: ListQuery) => parse(listQuerySchema, value, '');
export const parseTimestamp = (value: string, field: string) => parse(timestamp, value, field);
