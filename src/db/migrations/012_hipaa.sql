-- HIPAA support (issue #15, items 4-6): emergency access grants, the patient access log's index,
-- and audit retention with a purge point that keeps the seal chain verifiable.

-- Accounting of disclosures (GET /v1/patients/{id}/access-log) asks "every event naming this
-- patient": resource_ids @> ARRAY[id]. A GIN index answers that without reading the whole log.
CREATE INDEX audit_events_resource_ids_idx ON audit_events USING gin (resource_ids);

-- Break-glass ("emergency access"): a time-limited grant of a few clinical permissions to one user,
-- with the reason given. Rows are kept after they end (who ended them, when, why), for review.
CREATE TABLE emergency_access_grants (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id  uuid NOT NULL REFERENCES practices (id),
  user_id      uuid NOT NULL REFERENCES users (id),
  permissions  text[] NOT NULL CHECK (cardinality(permissions) BETWEEN 1 AND 10),
  -- Free text that may name a patient: kept here (PHI-grade storage), never in logs or events.
  reason       text NOT NULL CHECK (length(reason) BETWEEN 10 AND 1000),
  granted_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  ended_at     timestamptz,
  ended_by     uuid REFERENCES users (id),
  end_reason   text CHECK (length(end_reason) <= 1000),
  -- The user's token cut-off when granted: any later cut-off (deactivation, role or password
  -- change, logout everywhere) moves users.tokens_valid_after on, and the grant is dead.
  tokens_valid_after  timestamptz NOT NULL,
  ip           text,
  request_id   text,
  CHECK (expires_at > granted_at)
);
-- The guard's lookup: a user's grants that have not ended.
CREATE INDEX emergency_access_grants_user_idx ON emergency_access_grants (user_id, expires_at) WHERE ended_at IS NULL;
CREATE INDEX emergency_access_grants_practice_idx ON emergency_access_grants (practice_id, granted_at DESC, id DESC);

ALTER TABLE emergency_access_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE emergency_access_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY practice_isolation ON emergency_access_grants TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON emergency_access_grants TO medspa_system USING (true);
GRANT SELECT, INSERT, UPDATE ON emergency_access_grants TO medspa_app, medspa_system;

-- Each use of a break-glass permission is an audit event (emergency_access.used) with the request
-- id of the request it allowed; the access log marks that request's events through this index.
CREATE INDEX audit_events_emergency_use_idx ON audit_events (request_id) WHERE action = 'emergency_access.used';

-- Retention. Audit events and seals are kept AUDIT_RETENTION_YEARS (at least 6, 164.316(b)(2)),
-- then may be purged, only as whole sealed ranges from the start of a practice's chain, and only
-- through purge_audit_chain() below. Each purge appends a purge point: the last purged seal's
-- seq, xact_to and hash, from which verifyAuditChain() continues the chain (the first retained
-- seal must link to it exactly as it linked to the purged one).
CREATE TABLE audit_purges (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  chain_key       text NOT NULL,
  through_seq     bigint NOT NULL CHECK (through_seq >= 1),
  through_xact    xid8 NOT NULL,
  through_hash    text NOT NULL,
  seals_deleted   integer NOT NULL,
  events_deleted  bigint NOT NULL,
  cutoff          timestamptz NOT NULL,
  purged_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (chain_key, through_seq)
);
CREATE TRIGGER audit_purges_no_update BEFORE UPDATE OR DELETE ON audit_purges
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_purges_no_truncate BEFORE TRUNCATE ON audit_purges
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
ALTER TABLE audit_purges ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_purges FORCE ROW LEVEL SECURITY;
CREATE POLICY system_access ON audit_purges TO medspa_system USING (true);
GRANT SELECT ON audit_purges TO medspa_system;

-- The narrow exception to append-only. The trigger lets a DELETE through only while the
-- transaction-local flag medspa.audit_purge is 'on', which only purge_audit_chain() sets; UPDATE
-- and TRUNCATE stay refused always. The flag grants nothing by itself: neither application role
-- holds DELETE on these tables, so only this function (SECURITY DEFINER, run as the owner) and the
-- owner can delete at all, and the owner could drop the trigger anyway.
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('medspa.audit_purge', true) = 'on'
     AND TG_TABLE_NAME IN ('audit_events', 'audit_seals') THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;

-- The function runs as the tables' owner, and FORCE ROW LEVEL SECURITY gives the owner no rows
-- (unless it is a superuser): these policies let it see them only while the purge flag is on.
CREATE POLICY purge_access ON audit_events TO CURRENT_USER USING (current_setting('medspa.audit_purge', true) = 'on');
CREATE POLICY purge_access ON audit_seals TO CURRENT_USER USING (current_setting('medspa.audit_purge', true) = 'on');
CREATE POLICY purge_access ON audit_purges TO CURRENT_USER USING (current_setting('medspa.audit_purge', true) = 'on');

-- Purges one chain's seals 1..p_through_seq (counting from its last purge point) and the events
-- they cover. Refuses anything that is not a whole, contiguous, sealed prefix older than the
-- cutoff, a cutoff less than 6 years ago by the database's own clock, and the chain's newest seal
-- (the sealer continues from the newest seal's xact_to). Returns the events deleted.
CREATE FUNCTION purge_audit_chain(p_chain_key text, p_through_seq bigint, p_cutoff timestamptz)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  last_purge  audit_purges%ROWTYPE;
  through     audit_seals%ROWTYPE;
  first_seq   bigint;
  newest_seq  bigint;
  seals       integer;
  events      bigint;
BEGIN
  IF p_cutoff > now() - interval '6 years' THEN
    RAISE EXCEPTION 'audit records are kept at least 6 years (cutoff %)', p_cutoff USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- One purge of a chain at a time.
  PERFORM pg_advisory_xact_lock(hashtext('medspa_audit_purge'), hashtext(p_chain_key));
  PERFORM set_config('medspa.audit_purge', 'on', true);
  SELECT * INTO last_purge FROM audit_purges WHERE chain_key = p_chain_key ORDER BY through_seq DESC LIMIT 1;
  first_seq := coalesce(last_purge.through_seq, 0) + 1;
  SELECT max(seq) INTO newest_seq FROM audit_seals WHERE chain_key = p_chain_key;
  IF p_through_seq < first_seq OR newest_seq IS NULL OR p_through_seq >= newest_seq THEN
    RAISE EXCEPTION 'seal % of chain % cannot be purged (retained seals % to %, the newest stays)',
      p_through_seq, p_chain_key, first_seq, newest_seq USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT 1 FROM audit_seals WHERE chain_key = p_chain_key AND seq BETWEEN first_seq AND p_through_seq
              AND sealed_at >= p_cutoff) THEN
    RAISE EXCEPTION 'seals up to % of chain % are not all older than %', p_through_seq, p_chain_key, p_cutoff
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO through FROM audit_seals WHERE chain_key = p_chain_key AND seq = p_through_seq;

  DELETE FROM audit_events
   WHERE practice_id IS NOT DISTINCT FROM (CASE WHEN p_chain_key = 'system' THEN NULL ELSE p_chain_key::uuid END)
     AND xact_id < through.xact_to
     AND xact_id >= coalesce(last_purge.through_xact, '0'::xid8);
  GET DIAGNOSTICS events = ROW_COUNT;
  DELETE FROM audit_seals WHERE chain_key = p_chain_key AND seq BETWEEN first_seq AND p_through_seq;
  GET DIAGNOSTICS seals = ROW_COUNT;
  INSERT INTO audit_purges (chain_key, through_seq, through_xact, through_hash, seals_deleted, events_deleted, cutoff)
  VALUES (p_chain_key, p_through_seq, through.xact_to, through.hash, seals, events, p_cutoff);
  PERFORM set_config('medspa.audit_purge', 'off', true);
  RETURN events;
END
$$;
REVOKE ALL ON FUNCTION purge_audit_chain(text, bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_audit_chain(text, bigint, timestamptz) TO medspa_system;
