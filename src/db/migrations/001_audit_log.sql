-- The audit log as in the reference system (omicron PR #7339 and #10026).
CREATE TYPE audit_log_actor_kind AS ENUM ('user_builtin', 'silo_user', 'unauthenticated', 'scim');
CREATE TYPE audit_log_auth_method AS ENUM ('session_cookie', 'access_token', 'scim_token', 'spoof');
CREATE TYPE audit_log_result_kind AS ENUM ('success', 'error', 'timeout');

CREATE TABLE audit_log (
  id               uuid PRIMARY KEY,
  time_started     timestamptz NOT NULL,
  request_id       text NOT NULL CONSTRAINT request_id_length CHECK (char_length(request_id) <= 63),
  request_uri      text NOT NULL CONSTRAINT request_uri_length CHECK (char_length(request_uri) <= 512),
  operation_id     text NOT NULL CONSTRAINT operation_id_length CHECK (char_length(operation_id) <= 512),
  source_ip        inet NOT NULL,
  user_agent       text CONSTRAINT user_agent_length CHECK (char_length(user_agent) <= 256),
  actor_id         uuid,
  actor_silo_id    uuid,
  actor_kind       audit_log_actor_kind NOT NULL,
  auth_method      audit_log_auth_method,
  credential_id    uuid,
  time_completed   timestamptz,
  http_status_code int4,
  error_code       text,
  error_message    text,
  result_kind      audit_log_result_kind,

  -- time_completed and result_kind are both NULL or both set.
  CONSTRAINT completion_fields_together CHECK (
    (time_completed IS NULL) = (result_kind IS NULL)
  ),
  -- Each result kind carries exactly the fields that belong to it; an incomplete row carries none.
  -- `result_kind IS NOT NULL AND` keeps a disjunct false (not NULL, which a CHECK would accept)
  -- when the kind is NULL.
  CONSTRAINT result_fields_match_kind CHECK (
    (result_kind IS NULL
      AND http_status_code IS NULL AND error_code IS NULL AND error_message IS NULL)
    OR (result_kind IS NOT NULL AND result_kind = 'success'
      AND http_status_code IS NOT NULL AND error_code IS NULL AND error_message IS NULL)
    OR (result_kind IS NOT NULL AND result_kind = 'error'
      AND http_status_code IS NOT NULL AND error_message IS NOT NULL)
    OR (result_kind IS NOT NULL AND result_kind = 'timeout'
      AND http_status_code IS NULL AND error_code IS NULL AND error_message IS NULL)
  ),
  -- Built-in users and silo users carry an actor id (silo users also their silo); the others none.
  CONSTRAINT actor_kind_matches_ids CHECK (
    (actor_kind = 'user_builtin' AND actor_id IS NOT NULL AND actor_silo_id IS NULL)
    OR (actor_kind = 'silo_user' AND actor_id IS NOT NULL AND actor_silo_id IS NOT NULL)
    OR (actor_kind = 'scim' AND actor_id IS NULL AND actor_silo_id IS NOT NULL)
    OR (actor_kind = 'unauthenticated' AND actor_id IS NULL AND actor_silo_id IS NULL)
  ),
  -- A session, token or SCIM token is named by its credential id; spoofed or no auth has none.
  CONSTRAINT auth_method_matches_credential CHECK (
    (auth_method IS NULL AND credential_id IS NULL)
    OR (auth_method = 'spoof' AND credential_id IS NULL)
    OR (auth_method IS NOT NULL AND auth_method IN ('session_cookie', 'access_token', 'scim_token')
      AND credential_id IS NOT NULL)
  )
);

-- Listing the log, ordered by completion.
CREATE UNIQUE INDEX audit_log_by_time_completed
  ON audit_log (time_completed, id) WHERE time_completed IS NOT NULL;

-- The reference sweeper's index: incomplete rows by start time.
CREATE INDEX audit_log_incomplete_by_time_started
  ON audit_log (time_started, id) WHERE time_completed IS NULL;

CREATE VIEW audit_log_complete AS
  SELECT * FROM audit_log WHERE time_completed IS NOT NULL;
