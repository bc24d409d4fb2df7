import { z } from 'zod';

/**
 * What GET /v1/audit-log answers, as zod schemas: the responses of its OpenAPI document are
 * generated from these (dashboard/openapi.ts), and the tests check real answers against them.
 * Strict objects: a field the document does not describe is a difference, not a detail.
 */

const uuid = z.uuid();
/** RFC 3339 in UTC with microseconds, as the database formats it. */
const time = z.iso.datetime({ precision: 6 });
const status = z.number().int().min(100).max(599);

const actor = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('user_builtin'), id: uuid }),
  z.strictObject({ kind: z.literal('silo_user'), id: uuid, silo_id: uuid }),
  z.strictObject({ kind: z.literal('scim'), silo_id: uuid }),
  z.strictObject({ kind: z.literal('unauthenticated') }),
]);

const auth = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('spoof') }),
  z.strictObject({
    method: z.enum(['session_cookie', 'access_token', 'scim_token']),
    credential_id: uuid,
  }),
]);

const result = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('success'), http_status_code: status }),
    z.strictObject({
      kind: z.literal('error'),
      http_status_code: status,
      error_code: z.string().nullable(),
      error_message: z.string(),
    }),
    z.strictObject({ kind: z.literal('unknown') }),
  ])
  .meta({
    description:
      '`unknown`: the sweeper finalized the entry because its completion was never recorded; it does not mean the operation failed.',
  });

export const wireEntry = z.strictObject({
  id: uuid,
  time_started: time,
  time_completed: time,
  request_id: z.string(),
  request_uri: z.string(),
  operation_id: z.string(),
  source_ip: z.union([z.ipv4(), z.ipv6()]),
  user_agent: z.string().nullable(),
  actor,
  auth: auth.nullable(),
  result,
});
export type WireEntry = z.infer<typeof wireEntry>;

export const wirePage = z.strictObject({
  items: z.array(wireEntry),
  next_page_token: z.string().nullable().meta({
    description:
      'Where the next page starts: pass it as page_token with the same start_time, end_time and sort. Null only for an empty first page; a page shorter than limit is the end of the log for now.',
  }),
});

/** Every error the dashboard answers (dashboard/errors.ts). */
export const wireError = z.strictObject({
  error: z.strictObject({
    parameter: z
      .string()
      .optional()
      .meta({ description: 'The query parameter at fault, as sent (400 only).' }),
    message: z.string(),
  }),
});
