-- Audit sealing without ever rewriting an event. Until now the sealer read every new event back,
-- hashed it and UPDATEd three columns of it: each event was written twice (with its indexes) and
-- the guard trigger had to allow that one update. Now events are never updated at all, and the
-- sealer appends one row per practice and run to audit_seals, computed inside PostgreSQL.
--
-- Which events a seal covers: those of the transactions whose ids lie in [xact_from, xact_to).
-- xact_to is the oldest transaction still running when the sealer looked (its snapshot's xmin),
-- so every transaction below it has ended: no event can appear in a sealed range later, however
-- long the transaction that wrote it took (event ids, drawn from a sequence before commit, don't
-- have that property). A practice's seals are contiguous from transaction 0, so every event below
-- the last seal's xact_to is covered by exactly one seal.
--
-- Events sealed by the old per-event chain are covered again by the first new seals (their old
-- chain columns go; their content is untouched).
ALTER TABLE audit_events ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX audit_events_xact_idx ON audit_events (xact_id);
DROP INDEX audit_events_unsealed_idx;

CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER audit_events_no_update ON audit_events;
DROP TRIGGER audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
DROP FUNCTION audit_events_guard();
ALTER TABLE audit_events DROP COLUMN chain_seq, DROP COLUMN prev_hash, DROP COLUMN hash;
REVOKE UPDATE ON audit_events FROM medspa_system;
DROP TABLE audit_chain_heads;

CREATE TABLE audit_seals (
  chain_key      text NOT NULL,   -- a practice id, or 'system' for events outside any practice
  seq            bigint NOT NULL CHECK (seq >= 1),
  xact_from      xid8 NOT NULL,
  xact_to        xid8 NOT NULL CHECK (xact_to > xact_from),
  event_count    integer NOT NULL CHECK (event_count >= 1),
  -- SHA-256 of each covered event's canonical content, in event id order, 32 bytes each: lets
  -- verification name the exact event that no longer matches.
  event_digests  bytea NOT NULL CHECK (length(event_digests) = 32 * event_count),
  prev_hash      text NOT NULL,
  hash           text NOT NULL,   -- SHA-256 over prev_hash, seq, the range and the digests
  sealed_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_key, seq)
);
CREATE INDEX audit_seals_horizon_idx ON audit_seals (xact_to);
CREATE TRIGGER audit_seals_no_update BEFORE UPDATE OR DELETE ON audit_seals
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

ALTER TABLE audit_seals ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_seals FORCE ROW LEVEL SECURITY;
CREATE POLICY system_access ON audit_seals TO medspa_system USING (true);
GRANT SELECT, INSERT ON audit_seals TO medspa_system;
