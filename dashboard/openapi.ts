import { type Request, type Response, Router } from 'express';
import { z } from 'zod';
import { listQuerySchema } from '../src/store/validate.ts';
import { VERSION } from '../src/version.ts';
import { RETRY_AFTER_SECONDS } from './admission.ts';
import { PARAMETER_OF_FIELD, SAFETY_MARGIN_HEADER } from './audit-log-api.ts';
import { wireError, wirePage } from './audit-log-wire.ts';

/** Where the document is served, under DASHBOARD_BASE_PATH (and behind the same auth as the API). */
export const OPENAPI_PATH = '/v1/openapi.json';

type JsonSchema = Record<string, unknown>;

const DESCRIPTIONS: Record<string, string> = {
  start_time:
    'Inclusive. RFC 3339 with a time zone (`2026-01-02T03:04:05Z`; send `+01:00` as `%2B01:00`).',
  end_time:
    'Exclusive; must be later than start_time. Clamped to now minus the safety margin (see the Audit-Log-Safety-Margin header).',
  sort: 'Order of (time_completed, id).',
  limit: 'Entries per page.',
  page_token:
    "A previous page's next_page_token, with the same start_time, end_time and sort; a forged or altered token, or one from another query, is a 400 naming page_token.",
};

/**
 * The parameters' schemas, generated from the zod schema the store validates every list query
 * with (listQuerySchema), under the names the API gives its fields. Over HTTP every value is
 * text: the store's other inputs (a Date from in-process callers, null for "absent") are dropped.
 */
function parameters() {
  const query = z.toJSONSchema(listQuerySchema, { io: 'input', unrepresentable: 'any' }) as {
    properties: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(query.properties).map(([field, schema]) => {
    const name = PARAMETER_OF_FIELD[field];
    if (!name) throw new Error(`no API parameter for the store's field ${field}`);
    return {
      name,
      in: 'query',
      required: query.required?.includes(field) ?? false,
      description: DESCRIPTIONS[name],
      schema: textOnly(schema),
    };
  });
}

function textOnly(schema: JsonSchema): JsonSchema {
  const { anyOf, type, ...rest } = schema;
  if (Array.isArray(anyOf)) {
    // `{}` is the Date branch (unrepresentable in JSON Schema), `{type: 'null'}` the absent one.
    const kept = (anyOf as JsonSchema[])
      .map(textOnly)
      .filter((s) => Object.keys(s).length > 0 && s.type !== 'null');
    return kept.length === 1 ? { ...rest, ...kept[0] } : { ...rest, anyOf: kept };
  }
  if (Array.isArray(type)) {
    const kept = type.filter((t) => t !== 'null');
    return { ...rest, type: kept.length === 1 ? kept[0] : kept };
  }
  return schema;
}

const schema = (s: z.ZodType) => {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io: 'output' }) as JsonSchema;
  return rest;
};

const error = (description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

/** The OpenAPI 3.1 document of the public API, for a dashboard served under `basePath`. */
export function openApiDocument(basePath: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'audit-sweeper audit log',
      version: VERSION,
      description:
        'Completed audit-log entries, ordered by (time_completed, id), one page at a time. Entries the sweeper finalized read as result kind `unknown`.',
    },
    // A relative server URL, as OpenAPI 3.1 allows: the document's own origin, under the base path.
    ...(basePath ? { servers: [{ url: basePath }] } : {}),
    security: [{ basicAuth: [] }],
    paths: {
      '/v1/audit-log': {
        get: {
          operationId: 'listAuditLog',
          summary: 'List completed audit-log entries',
          parameters: parameters(),
          responses: {
            200: {
              description: 'One page.',
              headers: {
                [SAFETY_MARGIN_HEADER]: {
                  description:
                    'How far behind now the log is served (LIST_SAFETY_MARGIN), e.g. `30s`.',
                  schema: { type: 'string' },
                },
              },
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Page' } } },
            },
            400: error(
              'A bad, repeated, empty or unknown parameter, or a bad page token: `parameter` names it.',
            ),
            401: error('No or wrong credentials (HTTP Basic).'),
            503: error(
              'Too many requests waiting, or the database cannot answer in time: retry later.',
              {
                'Retry-After': {
                  description: `Seconds to wait (${RETRY_AFTER_SECONDS}).`,
                  schema: { type: 'integer' },
                },
              },
            ),
            500: error('An internal error; the details are in the log.'),
          },
        },
      },
    },
    components: {
      securitySchemes: { basicAuth: { type: 'http', scheme: 'basic' } },
      schemas: { Page: schema(wirePage), Error: schema(wireError) },
    },
  };
}

export function openApiRouter(basePath: string): Router {
  const document = JSON.stringify(openApiDocument(basePath));
  const router = Router();
  router.get(OPENAPI_PATH, (_req: Request, res: Response) => {
    res.type('application/json').send(document);
  });
  return router;
}
