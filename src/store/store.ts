import { isTransientDatabaseError, type Pool } from '../db/pool.ts';
import { type Logger, silentLogger } from '../log.ts';
import { type RetryPolicy, withRetry } from '../retry.ts';
import type { EntryRow } from '../sql/store.ts';
import * as sql from '../sql/store.ts';
import { EntryNotFoundError } from './errors.ts';
import { countLateCompletion } from './late-completions.ts';
import { decodePageToken, encodePageToken, type QueryBinding } from './page-token.ts';
import type {
  CompleteOutcome,
  Completion,
  Entry,
  EntryKey,
  ListQuery,
  NewEntry,
  Page,
  Result,
} from './types.ts';
import {
  parseCompletion,
  parseId,
  parseListQuery,
  parseNewEntry,
  parseTimestamp,
} from './validate.ts';

export type StoreOptions = {
  logger?: Logger;
  /** Rows completed less than this long ago are not listed yet (see listCompleted in src/sql/store.ts). */
  listSafetyMarginMs?: number;
  /** How `complete` retries a database that is briefly away; the reference's 250 ms x2, ~5 s. */
  completeRetry?: Pick<RetryPolicy, 'initialDelayMs' | 'totalMs'>;
};

/**
 * The audit log: what applications write (init, complete) and what clients read (list).
 * init must succeed before an operation runs; complete is best effort and may be lost, which is
 * what the sweeper exists for.
 */
export class AuditLogStore {
  private readonly logger: Logger;
  private pageKey: Promise<string> | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly options: StoreOptions = {},
  ) {
    this.logger = options.logger ?? silentLogger;
  }

  /** Records an operation about to run; returns its id. Any failure reaches the caller. */
  async init(entry: NewEntry): Promise<string> {
    return (await this.begin(entry)).id;
  }

  /**
   * init, returning the row's key: its id and its start. Passing the key to `complete` finds
   * the row in one time partition instead of looking in each (AUDIT_LOG_LAYOUT=partitioned).
   */
  async begin(entry: NewEntry): Promise<EntryKey> {
    const e = parseNewEntry(entry);
    const actor = e.actor;
    return sql.insertEntry(this.pool, {
      requestId: e.requestId,
      requestUri: e.requestUri,
      operationId: e.operationId,
      sourceIp: e.sourceIp,
      userAgent: e.userAgent ?? null,
      actorId: 'id' in actor ? actor.id : null,
      actorSiloId: 'siloId' in actor ? actor.siloId : null,
      actorKind: actor.kind,
      authMethod: e.auth?.method ?? null,
      credentialId: e.auth && 'credentialId' in e.auth ? e.auth.credentialId : null,
    });
  }

  /**
   * Records an operation's result, unless the row is already final (completed, or timed out by
   * the sweeper): a completed row never changes. Brief database outages are retried.
   */
  async complete(entry: string | EntryKey, result: Completion): Promise<CompleteOutcome> {
    const id = typeof entry === 'string' ? entry : entry.id;
    parseId(id);
    const timeStarted =
      typeof entry === 'string' ? undefined : parseTimestamp(entry.timeStarted, 'timeStarted');
    const r = parseCompletion(result);
    const policy: RetryPolicy = {
      initialDelayMs: this.options.completeRetry?.initialDelayMs ?? 250,
      totalMs: this.options.completeRetry?.totalMs ?? 5_000,
      isRetryable: isTransientDatabaseError,
      onRetry: (err, attempt, delayMs) =>
        this.logger.warn({ err, id, attempt, delayMs }, 'audit log completion failed; retrying'),
    };
    const update: sql.CompletionUpdate = {
      id,
      timeStarted,
      resultKind: r.kind,
      httpStatusCode: r.httpStatusCode,
      errorCode: r.kind === 'error' ? (r.errorCode ?? null) : null,
      errorMessage: r.kind === 'error' ? r.errorMessage : null,
    };
    // Set once an attempt has failed after its UPDATE may have reached the database: a dropped
    // connection can hide a commit, and the retry then finds the row final with our own result.
    let maybeApplied = false;
    return withRetry(policy, async () => {
      const applied = await sql.completeEntry(this.pool, update).catch((err) => {
        maybeApplied = true;
        throw err;
      });
      if (applied) return { applied: true } as const;
      const row = await sql.entryResult(this.pool, id, timeStarted);
      if (row === undefined) throw new EntryNotFoundError(id);
      if (
        maybeApplied &&
        row.resultKind === update.resultKind &&
        row.httpStatusCode === update.httpStatusCode &&
        row.errorCode === update.errorCode &&
        row.errorMessage === update.errorMessage
      ) {
        this.logger.info({ id }, 'completion applied by an earlier attempt whose answer was lost');
        return { applied: true } as const;
      }
      const existingResult = toResultKind(row.resultKind);
      countLateCompletion(existingResult);
      this.logger.warn(
        { id, existingResult, attempted: r.kind },
        'late completion ignored: entry already final',
      );
      return { applied: false, existingResult } as const;
    });
  }

  /** Completed entries by (time_completed, id), one page at a time. */
  async list(query: ListQuery): Promise<Page> {
    const q = parseListQuery(query);
    const binding: QueryBinding = {
      order: q.order,
      startTime: q.startTime,
      endTime: q.endTime ?? null,
    };
    const key = await this.pageTokenKey();
    const cursor = q.pageToken ? decodePageToken(key, binding, q.pageToken) : null;
    const rows = await sql.listCompleted(this.pool, {
      direction: q.order === 'ascending' ? 'ASC' : 'DESC',
      start: binding.startTime,
      end: binding.endTime,
      limit: q.limit,
      after: cursor,
      marginMs: this.options.listSafetyMarginMs ?? 0,
    });
    const items = rows.map(toEntry);
    const last = items.at(-1);
    // The token marks where this page ended, full or not. A short page is the end of the log for
    // now; keeping its token and asking again later returns what completed since (tailing), and
    // an empty page hands back the token it was given, so a reader never has to start over.
    const nextPageToken = last
      ? encodePageToken(key, binding, { time: last.timeCompleted, id: last.id })
      : (q.pageToken ?? null);
    return { items, nextPageToken };
  }

  private pageTokenKey(): Promise<string> {
    this.pageKey ??= sql.pageTokenKey(this.pool).then((key) => {
      if (key === undefined) throw new Error('page token key missing: run `audit-sweeper migrate`');
      return key;
    });
    this.pageKey.catch(() => {
      this.pageKey = undefined;
    });
    return this.pageKey;
  }
}

function toResultKind(kind: string | null): Result['kind'] {
  if (kind === null) throw new Error('entry is incomplete');
  return kind === 'timeout' ? 'unknown' : (kind as Result['kind']);
}

/** A database row in the shape clients see; `timeout` becomes `unknown` here and only here. */
function toEntry(row: EntryRow): Entry {
  const s = (k: string) => row[k] as string;
  const actorKind = s('actor_kind');
  const actor =
    actorKind === 'user_builtin'
      ? { kind: actorKind, id: s('actor_id') }
      : actorKind === 'silo_user'
        ? { kind: actorKind, id: s('actor_id'), siloId: s('actor_silo_id') }
        : actorKind === 'scim'
          ? { kind: actorKind, siloId: s('actor_silo_id') }
          : { kind: 'unauthenticated' as const };
  const method = row.auth_method as string | null;
  const auth: Entry['auth'] =
    method === null
      ? null
      : method === 'spoof'
        ? { method: 'spoof' }
        : { method: method as 'session_cookie', credentialId: s('credential_id') };
  const kind = toResultKind(row.result_kind as string | null);
  const result: Result =
    kind === 'success'
      ? { kind, httpStatusCode: row.http_status_code as number }
      : kind === 'error'
        ? {
            kind,
            httpStatusCode: row.http_status_code as number,
            errorCode: row.error_code as string | null,
            errorMessage: s('error_message'),
          }
        : { kind: 'unknown' };
  return {
    id: s('id'),
    timeStarted: s('time_started'),
    timeCompleted: s('time_completed'),
    requestId: s('request_id'),
    requestUri: s('request_uri'),
    operationId: s('operation_id'),
    sourceIp: s('source_ip'),
    userAgent: row.user_agent as string | null,
    actor: actor as Entry['actor'],
    auth,
    result,
  };
}
