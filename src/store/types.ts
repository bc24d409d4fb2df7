/** The audit log as applications and API clients see it (the database's shape is in src/sql/). */

export type Actor =
  | { kind: 'user_builtin'; id: string }
  | { kind: 'silo_user'; id: string; siloId: string }
  | { kind: 'scim'; siloId: string }
  | { kind: 'unauthenticated' };

export type Auth =
  | { method: 'spoof' }
  | { method: 'session_cookie' | 'access_token' | 'scim_token'; credentialId: string };

/** What an application records before running an operation. */
export type NewEntry = {
  requestId: string;
  requestUri: string;
  operationId: string;
  sourceIp: string;
  userAgent?: string | null;
  actor: Actor;
  auth?: Auth | null;
};

/** What an application records after the operation. */
export type Completion =
  | { kind: 'success'; httpStatusCode: number }
  | { kind: 'error'; httpStatusCode: number; errorCode?: string | null; errorMessage: string };

/**
 * The result as shown outside the database. `unknown` is the database's `timeout`: the logging
 * of the result was lost, not the operation timed out.
 */
export type Result =
  | { kind: 'success'; httpStatusCode: number }
  | { kind: 'error'; httpStatusCode: number; errorCode: string | null; errorMessage: string }
  | { kind: 'unknown' };

export type Entry = {
  id: string;
  timeStarted: string;
  timeCompleted: string;
  requestId: string;
  requestUri: string;
  operationId: string;
  sourceIp: string;
  userAgent: string | null;
  actor: Actor;
  auth: Auth | null;
  result: Result;
};

export type Order = 'ascending' | 'descending';

export type ListQuery = {
  /** Inclusive, RFC 3339 or Date. */
  startTime: string | Date;
  /** Exclusive; open-ended when absent. */
  endTime?: string | Date | null;
  order?: Order;
  /** 1..1000, default 100. */
  limit?: number;
  pageToken?: string | null;
};

export type Page = {
  items: Entry[];
  /**
   * Where the next page starts: after the last item, or where the given token pointed when the
   * page is empty; null only for an empty first page. Fewer items than `limit` means the end of
   * the log for now.
   */
  nextPageToken: string | null;
};

/** What `begin` returns: the id, and the start (RFC 3339, microseconds) that locates the row. */
export type EntryKey = { id: string; timeStarted: string };

export type CompleteOutcome =
  | { applied: true }
  | { applied: false; existingResult: Result['kind'] };
