import type pg from 'pg';

/**
 * A record of every write to audit_log after an insert, kept by a trigger in the same
 * transaction as the write (so a rolled-back write leaves none, a committed one always one):
 * `finalize` sets time_completed on an incomplete row, `rewrite` touches a row already final,
 * `incomplete` touches an incomplete row without finalizing it, `delete` removes a row.
 * The client port says which proxy connection, hence which process, wrote it; the transaction
 * id and start time group a sweep's chunk.
 */
const INSTALL = `
  CREATE TABLE chaos_write (
    seq            bigserial PRIMARY KEY,
    id             uuid NOT NULL,
    op             text NOT NULL,
    result_kind    audit_log_result_kind,
    time_completed timestamptz,
    txid           bigint NOT NULL DEFAULT txid_current(),
    xact_start     timestamptz NOT NULL DEFAULT now(),
    written_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    client_port    int DEFAULT inet_client_port()
  );
  CREATE FUNCTION chaos_record_write() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'DELETE' THEN
      INSERT INTO chaos_write (id, op) VALUES (OLD.id, 'delete');
      RETURN OLD;
    END IF;
    INSERT INTO chaos_write (id, op, result_kind, time_completed)
    VALUES (NEW.id,
            CASE WHEN OLD.time_completed IS NOT NULL THEN 'rewrite'
                 WHEN NEW.time_completed IS NOT NULL THEN 'finalize'
                 ELSE 'incomplete' END,
            NEW.result_kind, NEW.time_completed);
    RETURN NEW;
  END $$;
  CREATE TRIGGER chaos_record_write AFTER UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION chaos_record_write();`;

export async function installAuditTrail(db: pg.Pool): Promise<void> {
  await db.query(INSTALL);
}

/** One sweep chunk (or one completion): a committed transaction that finalized rows. */
export type WriteTx = {
  txid: string;
  port: number | null;
  start: number;
  end: number;
  rows: number;
  kind: string;
  minId: string;
  maxId: string;
};

export async function finalizingTransactions(db: pg.Pool): Promise<WriteTx[]> {
  const { rows } = await db.query(`
    SELECT txid::text, min(client_port) AS port,
           extract(epoch FROM min(xact_start)) * 1000 AS start,
           extract(epoch FROM max(written_at)) * 1000 AS end,
           count(*)::int AS rows, min(result_kind::text) AS kind,
           min(id::text) AS min_id, max(id::text) AS max_id
      FROM chaos_write WHERE op = 'finalize'
     GROUP BY txid`);
  return rows.map((r) => ({
    txid: r.txid,
    port: r.port,
    start: Number(r.start),
    end: Number(r.end),
    rows: r.rows,
    kind: r.kind,
    minId: r.min_id,
    maxId: r.max_id,
  }));
}
