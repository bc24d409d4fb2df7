import { randomUUID } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { EntryNotFoundError, InvalidInputError } from '../src/store/errors.ts';
import { lateCompletions } from '../src/store/late-completions.ts';
import { encodePageToken } from '../src/store/page-token.ts';
import { AuditLogStore } from '../src/store/store.ts';
import type { Completion, Entry, ListQuery, NewEntry } from '../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

/** The store against a real database: init, complete (with retries), list, and input checks. */

let db: TestDatabase;
let store: AuditLogStore;

beforeAll(async () => {
  db = await createTestDatabase('store');
  store = new AuditLogStore(db.pool, { listSafetyMarginMs: 0 });
});

afterAll(async () => {
  await db?.drop();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const EPOCH = '2000-01-01T00:00:00Z';

function entry(overrides: Partial<NewEntry> = {}): NewEntry {
  return {
    requestId: `req-${randomUUID().slice(0, 8)}`,
    requestUri: '/v1/instances?project=p',
    operationId: 'instance_create',
    sourceIp: '192.0.2.10',
    userAgent: 'oxide-cli/1.0',
    actor: { kind: 'silo_user', id: randomUUID(), siloId: randomUUID() },
    auth: { method: 'session_cookie', credentialId: randomUUID() },
    ...overrides,
  };
}

const ok: Completion = { kind: 'success', httpStatusCode: 200 };

async function rawRow(id: string) {
  const { rows } = await db.pool.query(
    `SELECT *, to_char(time_completed AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS tc
       FROM audit_log WHERE id = $1`,
    [id],
  );
  return rows[0];
}

/** Simulates the sweeper finalizing a row. */
async function timeOut(id: string): Promise<void> {
  await db.pool.query(
    `UPDATE audit_log SET time_completed = now(), result_kind = 'timeout' WHERE id = $1`,
    [id],
  );
}

/** Every page of a query, following the tokens. */
async function listAll(s: AuditLogStore, query: ListQuery): Promise<Entry[]> {
  const items: Entry[] = [];
  let pageToken: string | null = null;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await s.list({ ...query, pageToken });
    items.push(...page.items);
    if (page.items.length < (query.limit ?? 100)) return items;
    pageToken = page.nextPageToken;
  }
  throw new Error('paging did not end');
}

const ids = (entries: Entry[]) => entries.map((e) => e.id);

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A logger that keeps its lines, to see the store's warnings. */
function capturingLogger() {
  const lines: { msg: string; level: number }[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line)) },
  );
  return { logger, lines };
}

/** The error a call failed with (fails the test if it succeeded). */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('call succeeded but should have failed');
}

describe('init', () => {
  it('returns a new uuid; the row is incomplete, holds the entry, and is not listed', async () => {
    const e = entry();
    const id = await store.init(e);
    expect(id).toMatch(UUID);
    const row = await rawRow(id);
    expect(row).toMatchObject({
      request_id: e.requestId,
      request_uri: e.requestUri,
      operation_id: e.operationId,
      source_ip: e.sourceIp,
      user_agent: e.userAgent,
      actor_kind: 'silo_user',
      actor_id: (e.actor as { id: string }).id,
      actor_silo_id: (e.actor as { siloId: string }).siloId,
      auth_method: 'session_cookie',
      credential_id: (e.auth as { credentialId: string }).credentialId,
      time_completed: null,
      result_kind: null,
      http_status_code: null,
      error_code: null,
      error_message: null,
    });
    expect(row.time_started).toBeInstanceOf(Date);
    expect(ids(await listAll(store, { startTime: EPOCH }))).not.toContain(id);
    expect(await store.init(e)).not.toBe(id);
  });

  it('stores every actor and auth combination and lists it back in the same shape', async () => {
    const cases: Pick<NewEntry, 'actor' | 'auth' | 'userAgent'>[] = [
      { actor: { kind: 'user_builtin', id: randomUUID() }, auth: { method: 'spoof' } },
      {
        actor: { kind: 'silo_user', id: randomUUID(), siloId: randomUUID() },
        auth: { method: 'access_token', credentialId: randomUUID() },
      },
      {
        actor: { kind: 'scim', siloId: randomUUID() },
        auth: { method: 'scim_token', credentialId: randomUUID() },
      },
      { actor: { kind: 'unauthenticated' }, auth: null, userAgent: null },
    ];
    const since = new Date().toISOString();
    const created = new Map<string, (typeof cases)[number]>();
    for (const c of cases) created.set(await store.init(entry(c)), c);
    for (const id of created.keys()) await store.complete(id, ok);
    const listed = (await listAll(store, { startTime: since })).filter((e) => created.has(e.id));
    expect(listed).toHaveLength(cases.length);
    for (const e of listed) {
      const c = created.get(e.id);
      expect(e.actor).toEqual(c?.actor);
      expect(e.auth).toEqual(c?.auth);
      expect(e.userAgent).toBe(c?.userAgent === null ? null : 'oxide-cli/1.0');
      expect(e.result).toEqual({ kind: 'success', httpStatusCode: 200 });
      expect(e.sourceIp).toBe('192.0.2.10');
    }
  });

  it('stores an IPv6 source address', async () => {
    const id = await store.init(entry({ sourceIp: '2001:db8::42' }));
    expect((await rawRow(id)).source_ip).toBe('2001:db8::42');
  });

  it('a failure to write reaches the caller', async () => {
    const pool = createPool(`postgres://root@127.0.0.1:${await closedPort()}/x`, silentLogger);
    try {
      const err = await failure(new AuditLogStore(pool).init(entry()));
      expect(err).not.toBeInstanceOf(InvalidInputError);
      expect((err as { code?: string }).code).toBe('ECONNREFUSED');
    } finally {
      await pool.end();
    }
  });
});

describe('complete', () => {
  it('applies once; a second completion changes nothing and reports the first result', async () => {
    const { logger, lines } = capturingLogger();
    const s = new AuditLogStore(db.pool, { logger });
    const id = await s.init(entry());
    expect(await s.complete(id, { kind: 'success', httpStatusCode: 201 })).toEqual({
      applied: true,
    });
    const first = await rawRow(id);
    expect(first).toMatchObject({
      result_kind: 'success',
      http_status_code: 201,
      error_code: null,
      error_message: null,
    });
    expect(first.tc).not.toBeNull();
    expect(
      await s.complete(id, {
        kind: 'error',
        httpStatusCode: 500,
        errorCode: 'Internal',
        errorMessage: 'x',
      }),
    ).toEqual({ applied: false, existingResult: 'success' });
    expect(await rawRow(id)).toEqual(first);
    expect(lines.filter((l) => /late completion/.test(l.msg))).toHaveLength(1);
  });

  it('records an error with and without an error code', async () => {
    const a = await store.init(entry());
    const b = await store.init(entry());
    await store.complete(a, {
      kind: 'error',
      httpStatusCode: 404,
      errorCode: 'ObjectNotFound',
      errorMessage: 'not found',
    });
    await store.complete(b, { kind: 'error', httpStatusCode: 503, errorMessage: 'unavailable' });
    expect(await rawRow(a)).toMatchObject({
      result_kind: 'error',
      http_status_code: 404,
      error_code: 'ObjectNotFound',
      error_message: 'not found',
    });
    expect(await rawRow(b)).toMatchObject({
      result_kind: 'error',
      http_status_code: 503,
      error_code: null,
      error_message: 'unavailable',
    });
  });

  it('a late completion after the sweeper timed the row out changes nothing and is not an error', async () => {
    const { logger, lines } = capturingLogger();
    const s = new AuditLogStore(db.pool, { logger });
    const id = await s.init(entry());
    await timeOut(id);
    const before = await rawRow(id);
    expect(before.result_kind).toBe('timeout');
    const lateBefore = lateCompletions().get('unknown') ?? 0;
    expect(await s.complete(id, { kind: 'success', httpStatusCode: 200 })).toEqual({
      applied: false,
      existingResult: 'unknown',
    });
    expect(
      await s.complete(id, { kind: 'error', httpStatusCode: 500, errorMessage: 'late' }),
    ).toEqual({ applied: false, existingResult: 'unknown' });
    // Counted for audit_sweeper_late_completions_total, by the result the entry already had.
    expect(lateCompletions().get('unknown')).toBe(lateBefore + 2);
    const scraped = await createMetrics().registry.metrics();
    expect(scraped).toContain(
      `audit_sweeper_late_completions_total{existing_result="unknown"} ${lateBefore + 2}`,
    );
    const after = await rawRow(id);
    expect(after).toEqual(before);
    expect(after).toMatchObject({
      result_kind: 'timeout',
      tc: before.tc,
      http_status_code: null,
      error_code: null,
      error_message: null,
    });
    const warnings = lines.filter((l) => /late completion/.test(l.msg));
    expect(warnings).toHaveLength(2);
    expect(warnings.every((l) => l.level === 40)).toBe(true);
  });

  it('an unknown id is EntryNotFoundError, without retries', async () => {
    const { logger, lines } = capturingLogger();
    const s = new AuditLogStore(db.pool, { logger });
    const id = randomUUID();
    const err = await failure(s.complete(id, ok));
    expect(err).toBeInstanceOf(EntryNotFoundError);
    expect((err as EntryNotFoundError).id).toBe(id);
    expect(lines.filter((l) => /retrying/.test(l.msg))).toHaveLength(0);
  });

  it('gives up with the database error once the retry time is spent', async () => {
    const { logger, lines } = capturingLogger();
    const pool = createPool(`postgres://root@127.0.0.1:${await closedPort()}/x`, silentLogger);
    try {
      const s = new AuditLogStore(pool, {
        logger,
        completeRetry: { initialDelayMs: 20, totalMs: 300 },
      });
      const err = await failure(s.complete(randomUUID(), ok));
      expect(err).not.toBeInstanceOf(EntryNotFoundError);
      expect((err as { code?: string }).code).toBe('ECONNREFUSED');
      // Attempts at about 0, 20, 60, 140 ms; the next would start after 300 ms.
      const retries = lines.filter((l) => /retrying/.test(l.msg));
      expect(retries.length).toBeGreaterThanOrEqual(2);
      expect(retries.length).toBeLessThanOrEqual(4);
    } finally {
      await pool.end();
    }
  });

  it('retries a database that is briefly away and then applies the completion', async () => {
    const id = await store.init(entry());
    const port = await closedPort();
    const { logger, lines } = capturingLogger();
    const pool = createPool(`postgres://root@127.0.0.1:${port}/${db.name}`, silentLogger);
    const sockets = new Set<Socket>();
    let proxy: Server | undefined;
    // The "database" comes back 300 ms later: a TCP proxy to the real server on the same port.
    const back = setTimeout(() => {
      proxy = createServer((client) => {
        const upstream = connect(5432, '127.0.0.1');
        sockets.add(client).add(upstream);
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      }).listen(port, '127.0.0.1');
    }, 300);
    try {
      const s = new AuditLogStore(pool, {
        logger,
        completeRetry: { initialDelayMs: 50, totalMs: 5_000 },
      });
      expect(await s.complete(id, ok)).toEqual({ applied: true });
      expect(lines.filter((l) => /retrying/.test(l.msg)).length).toBeGreaterThanOrEqual(1);
      expect((await rawRow(id)).result_kind).toBe('success');
    } finally {
      clearTimeout(back);
      await pool.end();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)));
    }
  });
  it('a completion whose answer was lost with its connection, then retried, reports itself applied', async () => {
    // Found by the chaos run (seed 1): the UPDATE committed, the connection dropped before its
    // answer arrived, the retry found the row final with this very result, and the application
    // was told its completion had been ignored ("late completion ignored") though it was recorded.
    const id = await store.init(entry());
    const result: Completion = { kind: 'error', httpStatusCode: 409, errorMessage: 'conflict' };
    const { logger, lines } = capturingLogger();
    const sockets = new Set<Socket>();
    let dropped = false;
    // Passes everything to the database, except the first answer to the completion's UPDATE:
    // that connection is reset instead, after the server has run (and committed) it.
    const proxy = createServer((client) => {
      const upstream = connect(5432, '127.0.0.1');
      sockets.add(client).add(upstream);
      let updateSent = false;
      client.on('data', (data: Buffer) => {
        if (data.includes('UPDATE audit_log')) updateSent = true;
        upstream.write(data);
      });
      upstream.on('data', (data: Buffer) => {
        if (updateSent && !dropped) {
          dropped = true;
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        client.write(data);
      });
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    }).listen(0, '127.0.0.1');
    await new Promise((resolve) => proxy.once('listening', resolve));
    const port = (proxy.address() as AddressInfo).port;
    const pool = createPool(`postgres://root@127.0.0.1:${port}/${db.name}`, silentLogger);
    try {
      const s = new AuditLogStore(pool, {
        logger,
        completeRetry: { initialDelayMs: 50, totalMs: 5_000 },
      });
      expect(await s.complete(id, result)).toEqual({ applied: true });
      expect(dropped).toBe(true);
      expect(lines.filter((l) => /late completion/.test(l.msg))).toHaveLength(0);
      expect(await rawRow(id)).toMatchObject({ result_kind: 'error', http_status_code: 409 });
      // A later, separate completion is still told the row was already final.
      expect(await s.complete(id, result)).toEqual({ applied: false, existingResult: 'error' });
    } finally {
      await pool.end();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});

describe('list', () => {
  beforeEach(async () => {
    await db.pool.query('TRUNCATE audit_log');
  });

  it('lists entries in completion order, not start order, in both directions', async () => {
    const started: string[] = [];
    for (let i = 0; i < 6; i++) started.push(await store.init(entry({ requestId: `r${i}` })));
    const completionOrder = [3, 0, 5, 1, 4, 2].map((i) => started[i] as string);
    for (const id of completionOrder) await store.complete(id, ok);

    const asc = await listAll(store, { startTime: EPOCH, order: 'ascending' });
    expect(ids(asc)).toEqual(completionOrder);
    const desc = await listAll(store, { startTime: EPOCH, order: 'descending' });
    expect(ids(desc)).toEqual([...completionOrder].reverse());
    // The same with one entry per page, following the tokens.
    expect(ids(await listAll(store, { startTime: EPOCH, limit: 1 }))).toEqual(completionOrder);
    expect(ids(await listAll(store, { startTime: EPOCH, limit: 4, order: 'descending' }))).toEqual(
      [...completionOrder].reverse(),
    );
    // The default order is ascending.
    expect(ids((await store.list({ startTime: EPOCH })).items)).toEqual(completionOrder);
    // timeCompleted strictly increases along the ascending list.
    const times = asc.map((e) => e.timeCompleted);
    expect([...times].sort()).toEqual(times);
    expect(new Set(times).size).toBe(times.length);
    for (const t of times) expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('never lists an incomplete entry', async () => {
    const done = await store.init(entry());
    const pending = await store.init(entry());
    await store.complete(done, ok);
    expect(ids(await listAll(store, { startTime: EPOCH }))).toEqual([done]);
    expect(ids(await listAll(store, { startTime: EPOCH, order: 'descending' }))).toEqual([done]);
    expect(ids(await listAll(store, { startTime: EPOCH }))).not.toContain(pending);
  });

  it('shows a timed-out entry with result kind unknown, never timeout', async () => {
    const timedOut = await store.init(entry());
    const failed = await store.init(entry());
    await timeOut(timedOut);
    await store.complete(failed, { kind: 'error', httpStatusCode: 409, errorMessage: 'conflict' });
    const listed = await listAll(store, { startTime: EPOCH });
    expect(listed.map((e) => [e.id, e.result])).toEqual([
      [timedOut, { kind: 'unknown' }],
      [failed, { kind: 'error', httpStatusCode: 409, errorCode: null, errorMessage: 'conflict' }],
    ]);
    expect(JSON.stringify(listed)).not.toContain('timeout');
  });

  it('every page has a token to resume from; at the end, following it returns what completed since', async () => {
    expect(await store.list({ startTime: EPOCH, limit: 3 })).toEqual({
      items: [],
      nextPageToken: null,
    });
    for (let i = 0; i < 3; i++) await store.complete(await store.init(entry()), ok);
    const first = await store.list({ startTime: EPOCH, limit: 3 });
    expect(first.items).toHaveLength(3);
    expect(first.nextPageToken).toEqual(expect.any(String));
    // The end for now: an empty page that hands back the same position.
    const second = await store.list({ startTime: EPOCH, limit: 3, pageToken: first.nextPageToken });
    expect(second).toEqual({ items: [], nextPageToken: first.nextPageToken });
    const late = await store.init(entry());
    await store.complete(late, ok);
    const third = await store.list({ startTime: EPOCH, limit: 3, pageToken: second.nextPageToken });
    expect(ids(third.items)).toEqual([late]);
    // A short page carries its token too.
    const short = await store.list({ startTime: EPOCH, limit: 5 });
    expect(short.items).toHaveLength(4);
    const after = await store.list({ startTime: EPOCH, limit: 5, pageToken: short.nextPageToken });
    expect(after.items).toEqual([]);
  });

  it('a page token from one store works in another (the key lives in the database)', async () => {
    for (let i = 0; i < 4; i++) await store.complete(await store.init(entry()), ok);
    const all = await listAll(store, { startTime: EPOCH });
    const first = await store.list({ startTime: EPOCH, limit: 2 });
    const other = new AuditLogStore(db.pool);
    const second = await other.list({ startTime: EPOCH, limit: 2, pageToken: first.nextPageToken });
    expect(ids([...first.items, ...second.items])).toEqual(ids(all));
  });

  it('startTime is inclusive and endTime exclusive, to the microsecond', async () => {
    // Four completed rows a few microseconds apart, within one millisecond.
    const times = [
      '2024-05-01T10:00:00.123100Z',
      '2024-05-01T10:00:00.123200Z',
      '2024-05-01T10:00:00.123300Z',
      '2024-05-01T10:00:00.123400Z',
    ];
    const rows: string[] = [];
    for (const t of times) {
      const id = await store.init(entry());
      await db.pool.query(
        `UPDATE audit_log SET time_started = $2::timestamptz - interval '1 second',
                time_completed = $2, result_kind = 'success', http_status_code = 200
          WHERE id = $1`,
        [id, t],
      );
      rows.push(id);
    }
    const window = { startTime: times[1] as string, endTime: times[3] as string };
    const asc = await listAll(store, window);
    expect(ids(asc)).toEqual([rows[1], rows[2]]);
    expect(asc.map((e) => e.timeCompleted)).toEqual([times[1], times[2]]);
    expect(ids(await listAll(store, { ...window, order: 'descending', limit: 1 }))).toEqual([
      rows[2],
      rows[1],
    ]);
    // The same instants written with an offset.
    expect(
      ids(
        await listAll(store, {
          startTime: '2024-05-01T12:00:00.1232+02:00',
          endTime: '2024-05-01T12:00:00.1234+02:00',
        }),
      ),
    ).toEqual([rows[1], rows[2]]);
    // Dates (millisecond precision) work too.
    expect(
      ids(
        await listAll(store, {
          startTime: new Date('2024-05-01T10:00:00.123Z'),
          endTime: new Date('2024-05-01T10:00:00.124Z'),
        }),
      ),
    ).toEqual(rows);
    // endTime is exclusive even at the oldest row.
    expect(ids(await listAll(store, { startTime: EPOCH, endTime: times[0] as string }))).toEqual(
      [],
    );
  });

  it('holds back rows completed within the safety margin', async () => {
    const id = await store.init(entry());
    await store.complete(id, ok);
    const cautious = new AuditLogStore(db.pool, { listSafetyMarginMs: 60_000 });
    expect((await cautious.list({ startTime: EPOCH })).items).toEqual([]);
    await db.pool.query(
      `UPDATE audit_log SET time_started = now() - interval '62 seconds',
              time_completed = now() - interval '61 seconds' WHERE id = $1`,
      [id],
    );
    expect(ids((await cautious.list({ startTime: EPOCH })).items)).toEqual([id]);
    expect(ids((await store.list({ startTime: EPOCH })).items)).toEqual([id]);
  });
});

describe('bad input is InvalidInputError naming the field, never a database error', () => {
  let token: string;
  let listedId: string;

  beforeAll(async () => {
    await db.pool.query('TRUNCATE audit_log');
    for (let i = 0; i < 3; i++) {
      listedId = await store.init(entry());
      await store.complete(listedId, ok);
    }
    const page = await store.list({ startTime: EPOCH, limit: 1 });
    token = page.nextPageToken as string;
    expect(token).toEqual(expect.any(String));
  });

  async function expectInvalid(call: Promise<unknown>, field: string) {
    const err = await failure(call);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(err.message).not.toMatch(/violates|syntax|constraint|relation|column|SQL/i);
    expect((err as { code?: unknown }).code).toBeUndefined();
  }

  const count = async () =>
    (await db.pool.query('SELECT count(*)::int AS n FROM audit_log')).rows[0].n as number;

  const badEntries: [string, string, Partial<NewEntry> | Record<string, unknown>][] = [
    ['requestId', 'over 63 characters', { requestId: 'r'.repeat(64) }],
    ['requestId', 'empty', { requestId: '' }],
    ['requestId', 'missing', { requestId: undefined }],
    ['requestId', 'not a string', { requestId: 42 }],
    ['requestUri', 'over 512 characters', { requestUri: 'u'.repeat(513) }],
    ['operationId', 'over 512 characters', { operationId: 'o'.repeat(513) }],
    ['userAgent', 'over 256 characters', { userAgent: 'a'.repeat(257) }],
    ['sourceIp', 'not an address', { sourceIp: 'localhost' }],
    ['sourceIp', 'an IPv4 address out of range', { sourceIp: '256.1.1.1' }],
    ['sourceIp', 'an address with a port', { sourceIp: '10.0.0.1:443' }],
    ['sourceIp', 'an IPv6 address with a zone', { sourceIp: 'fe80::1%eth0' }],
    ['sourceIp', 'empty', { sourceIp: '' }],
    ['actor.id', 'a malformed actor id', { actor: { kind: 'user_builtin', id: 'bob' } }],
    [
      'actor.siloId',
      'a malformed silo id',
      { actor: { kind: 'silo_user', id: randomUUID(), siloId: '1234' } },
    ],
    [
      'actor.id',
      'a silo user without actor id',
      { actor: { kind: 'silo_user', siloId: randomUUID() } },
    ],
    ['actor.siloId', 'scim without silo id', { actor: { kind: 'scim' } }],
    [
      'actor',
      'unauthenticated with an actor id',
      { actor: { kind: 'unauthenticated', id: randomUUID() } },
    ],
    [
      'actor',
      'a built-in user with a silo id',
      { actor: { kind: 'user_builtin', id: randomUUID(), siloId: randomUUID() } },
    ],
    ['actor.kind', 'an unknown actor kind', { actor: { kind: 'robot' } }],
    ['actor', 'no actor', { actor: undefined }],
    [
      'auth.credentialId',
      'a malformed credential id',
      { auth: { method: 'access_token', credentialId: 'nope' } },
    ],
    ['auth.credentialId', 'a session without credential', { auth: { method: 'session_cookie' } }],
    ['auth', 'spoof with a credential', { auth: { method: 'spoof', credentialId: randomUUID() } }],
    ['auth.method', 'an unknown auth method', { auth: { method: 'password' } }],
    ['requestId', 'a NUL character', { requestId: 'a\u0000b' }],
    ['userAgent', 'a NUL character', { userAgent: 'curl\u0000' }],
  ];

  it.each(badEntries)('init: %s %s', async (field, _case, overrides) => {
    const before = await count();
    await expectInvalid(store.init({ ...entry(), ...overrides } as NewEntry), field);
    expect(await count()).toBe(before);
  });

  it('init accepts strings exactly at the column limits', async () => {
    const id = await store.init(
      entry({
        requestId: 'r'.repeat(63),
        requestUri: 'u'.repeat(512),
        operationId: 'o'.repeat(512),
        userAgent: 'a'.repeat(256),
      }),
    );
    expect((await rawRow(id)).request_id).toHaveLength(63);
  });

  const badCompletions: [string, string, unknown][] = [
    ['result.kind', 'kind timeout (only the sweeper writes it)', { kind: 'timeout' }],
    ['result.kind', 'kind unknown', { kind: 'unknown' }],
    ['result.httpStatusCode', 'status 99', { kind: 'success', httpStatusCode: 99 }],
    ['result.httpStatusCode', 'status 600', { kind: 'success', httpStatusCode: 600 }],
    ['result.httpStatusCode', 'status 200.5', { kind: 'success', httpStatusCode: 200.5 }],
    ['result.httpStatusCode', 'no status', { kind: 'error', errorMessage: 'm' }],
    ['result.errorMessage', 'an error without message', { kind: 'error', httpStatusCode: 500 }],
    [
      'result',
      'a success with an error message',
      { kind: 'success', httpStatusCode: 200, errorMessage: 'm' },
    ],
    [
      'result.errorMessage',
      'a NUL character',
      { kind: 'error', httpStatusCode: 500, errorMessage: 'a\u0000' },
    ],
    [
      'result.errorCode',
      'a NUL character',
      { kind: 'error', httpStatusCode: 500, errorCode: '\u0000', errorMessage: 'm' },
    ],
  ];

  it.each(badCompletions)('complete: %s for %s', async (field, _case, result) => {
    const id = await store.init(entry());
    await expectInvalid(store.complete(id, result as Completion), field);
    expect((await rawRow(id)).result_kind).toBeNull();
  });

  it.each(['', 'not-a-uuid', '123e4567-e89b-12d3-a456-42661417400', "'; DROP TABLE audit_log; --"])(
    'complete: malformed id %j',
    async (id) => {
      await expectInvalid(store.complete(id, ok), 'id');
    },
  );

  const badQueries: [string, string, Record<string, unknown>][] = [
    ['limit', '0', { limit: 0 }],
    ['limit', '1001', { limit: 1001 }],
    ['limit', '1.5', { limit: 1.5 }],
    ['limit', '-1', { limit: -1 }],
    ['limit', 'NaN', { limit: Number.NaN }],
    ['limit', 'a string', { limit: '10' }],
    [
      'endTime',
      'before startTime',
      { startTime: '2024-01-02T00:00:00Z', endTime: '2024-01-01T00:00:00Z' },
    ],
    [
      'endTime',
      'equal to startTime',
      { startTime: '2024-01-01T00:00:00Z', endTime: '2024-01-01T00:00:00Z' },
    ],
    [
      'endTime',
      'a microsecond before startTime',
      { startTime: '2024-01-01T00:00:00.000002Z', endTime: '2024-01-01T00:00:00.000001Z' },
    ],
    ['startTime', 'missing', { startTime: undefined }],
    ['startTime', 'not a timestamp', { startTime: 'yesterday' }],
    ['startTime', 'without a time zone', { startTime: '2024-01-01T00:00:00' }],
    ['startTime', 'an invalid Date', { startTime: new Date(Number.NaN) }],
    ['startTime', 'year 0', { startTime: '0000-01-01T00:00:00Z' }],
    ['startTime', 'a Date in year 0', { startTime: new Date('0000-06-01T00:00:00Z') }],
    ['startTime', 'a Date after year 9999', { startTime: new Date('+010000-01-01T00:00:00Z') }],
    ['endTime', 'not a timestamp', { endTime: 'tomorrow' }],
    ['order', 'an unknown order', { order: 'up' }],
    ['pageToken', 'a token without signature', { pageToken: 'abc' }],
    ['pageToken', 'a token with three parts', { pageToken: 'a.b.c' }],
    ['pageToken', 'an empty token part', { pageToken: '.sig' }],
  ];

  it.each(badQueries)('list: %s %s', async (field, _case, query) => {
    await expectInvalid(store.list({ startTime: EPOCH, ...query } as ListQuery), field);
  });

  it('list: the limits 1 and 1000 are accepted', async () => {
    expect((await store.list({ startTime: EPOCH, limit: 1 })).items).toHaveLength(1);
    expect((await store.list({ startTime: EPOCH, limit: 1000 })).items).toHaveLength(3);
  });

  it('list: the token itself is accepted for its own query', async () => {
    const page = await store.list({ startTime: EPOCH, limit: 1, pageToken: token });
    expect(page.items).toHaveLength(1);
  });

  it.each(['2000-01-01T00:00:00.000Z', '2000-01-01T00:00:00.000000Z', '2000-01-01T02:00:00+02:00'])(
    'list: the token works when the same startTime is written as %s',
    async (startTime) => {
      const page = await store.list({ startTime, limit: 1, pageToken: token });
      expect(page.items).toHaveLength(1);
      const dated = await store.list({ startTime: new Date(EPOCH), limit: 1, pageToken: token });
      expect(dated.items).toEqual(page.items);
    },
  );

  it('list: a token with one character of its signature changed', async () => {
    const [body, signature = ''] = token.split('.');
    const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
    await expectInvalid(
      store.list({ startTime: EPOCH, limit: 1, pageToken: `${body}.${flipped}` }),
      'pageToken',
    );
  });

  it('list: a token whose body was changed (cursor moved) keeps its old signature', async () => {
    const [body = '', signature] = token.split('.');
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    expect(payload).toMatchObject({ order: 'ascending', time: expect.any(String) });
    for (const change of [{ id: listedId }, { time: '1999-01-01T00:00:00.000000Z' }, { v: 2 }]) {
      const forged = Buffer.from(JSON.stringify({ ...payload, ...change })).toString('base64url');
      await expectInvalid(
        store.list({ startTime: EPOCH, limit: 1, pageToken: `${forged}.${signature}` }),
        'pageToken',
      );
    }
  });

  it('list: a token signed with another key', async () => {
    const forged = encodePageToken(
      'not-the-key',
      { order: 'ascending', startTime: '2000-01-01T00:00:00.000000Z', endTime: null },
      { time: '1999-01-01T00:00:00.000000Z', id: randomUUID() },
    );
    await expectInvalid(store.list({ startTime: EPOCH, pageToken: forged }), 'pageToken');
  });

  it.each([
    ['a different order', { order: 'descending' }],
    ['a different startTime', { startTime: '2000-01-01T00:00:01Z' }],
    ['an endTime added', { endTime: '2100-01-01T00:00:00Z' }],
  ])('list: a token from another query (%s)', async (_case, change) => {
    await expectInvalid(
      store.list({ startTime: EPOCH, limit: 1, pageToken: token, ...change } as ListQuery),
      'pageToken',
    );
  });

  it('list: a token for a query with endTime does not work without it', async () => {
    const bounded = await store.list({
      startTime: EPOCH,
      endTime: '2100-01-01T00:00:00Z',
      limit: 1,
    });
    expect(bounded.nextPageToken).toEqual(expect.any(String));
    await expectInvalid(
      store.list({ startTime: EPOCH, limit: 1, pageToken: bounded.nextPageToken }),
      'pageToken',
    );
    await expectInvalid(
      store.list({
        startTime: EPOCH,
        endTime: '2099-01-01T00:00:00Z',
        limit: 1,
        pageToken: bounded.nextPageToken,
      }),
      'pageToken',
    );
  });
});
