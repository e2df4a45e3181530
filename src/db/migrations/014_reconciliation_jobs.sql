-- Reconciliation jobs (/v2/reconciliations, docs/reconciliation.md; src/reconcile/jobs/, review/).
--
-- A job is an uploaded export (CSV or JSON) matched in the background against the practice's
-- patients or completed appointments. The queue is the jobs table itself, claimed with
-- FOR UPDATE SKIP LOCKED under a lease (src/jobs/claim.ts): a job whose instance died is claimed
-- again once its lease has expired, and the claim token fences every write of the run.
--
-- The uploaded rows and the per-row evidence are PHI from another system: they are stored only
-- sealed (AES-256-GCM, bound to the job id and the chunk; src/reconcile/jobs/sealed.ts). What is in
-- clear is what filtering and paging need: the row's position, its band, the confidence, the
-- practice record it was linked to, and the reviewer's decision.
CREATE TABLE reconciliation_jobs (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id           uuid NOT NULL REFERENCES practices (id),
  kind                  text NOT NULL CHECK (kind IN ('PATIENTS', 'APPOINTMENTS', 'TRANSACTIONS')),
  algorithm             text NOT NULL CHECK (algorithm IN ('FUZZY_MATCH', 'ML_MODEL', 'HYBRID')),
  confidence_threshold  double precision NOT NULL CHECK (confidence_threshold BETWEEN 0.1 AND 1.0),
  review_floor          double precision NOT NULL CHECK (review_floor >= 0.1 AND review_floor <= confidence_threshold),
  -- The other system's name ("alle", "aspire"): the key of the patients' externalIds on apply.
  source                text CHECK (source ~ '^[a-z0-9][a-z0-9_.-]{0,49}$'),
  options               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
  status                text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  -- Where a running job is (loading, scoring, storing) and since when: the ETA is estimated from it.
  phase                 text NOT NULL DEFAULT 'queued' CHECK (phase IN ('queued', 'loading', 'scoring', 'storing', 'done')),
  phase_started_at      timestamptz,
  records_written       integer NOT NULL DEFAULT 0,
  -- Which column of the file was read as what, and what was ignored (no values, only headers).
  columns               jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(columns) = 'array'),
  -- Rows refused while reading (line, column, reason; never the row's values).
  bad_rows              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(bad_rows) = 'array'),
  file_name             text CHECK (length(file_name) <= 255),
  file_bytes            bigint NOT NULL DEFAULT 0 CHECK (file_bytes >= 0),
  rows_read             integer NOT NULL DEFAULT 0 CHECK (rows_read BETWEEN 0 AND 200000),
  input_chunks          integer NOT NULL DEFAULT 0 CHECK (input_chunks >= 0),
  candidates            integer NOT NULL DEFAULT 0,
  pairs_scored          bigint NOT NULL DEFAULT 0,
  accepted_count        integer NOT NULL DEFAULT 0,
  review_count          integer NOT NULL DEFAULT 0,
  unmatched_count       integer NOT NULL DEFAULT 0,
  attempts              integer NOT NULL DEFAULT 0,
  error_code            text,
  error_message         text CHECK (length(error_message) <= 500),
  created_by_type       text NOT NULL CHECK (created_by_type IN ('user', 'api_key')),
  created_by_id         uuid NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  started_at            timestamptz,
  finished_at           timestamptz,
  applied_at            timestamptz,
  claimed_by            text,
  lease_until           timestamptz
);
CREATE INDEX reconciliation_jobs_practice_created_idx ON reconciliation_jobs (practice_id, created_at DESC, id DESC);
CREATE INDEX reconciliation_jobs_ready_idx ON reconciliation_jobs (created_at) WHERE status IN ('queued', 'running');

-- The uploaded rows, in sealed chunks of a few thousand (one statement each way per chunk).
CREATE TABLE reconciliation_job_chunks (
  job_id       uuid NOT NULL REFERENCES reconciliation_jobs (id) ON DELETE CASCADE,
  practice_id  uuid NOT NULL REFERENCES practices (id),
  part         text NOT NULL CHECK (part IN ('input', 'practice_input')),
  seq          integer NOT NULL CHECK (seq >= 0),
  sealed       text NOT NULL,
  PRIMARY KEY (job_id, part, seq)
);

-- One row per data row of the file: the result, and the reviewer's decision on it.
CREATE TABLE reconciliation_job_records (
  job_id             uuid NOT NULL REFERENCES reconciliation_jobs (id) ON DELETE CASCADE,
  practice_id        uuid NOT NULL REFERENCES practices (id),
  record_index       integer NOT NULL CHECK (record_index >= 0),
  band               text NOT NULL CHECK (band IN ('accepted', 'review', 'unmatched')),
  confidence         double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
  entity_id          uuid,
  -- Candidates with their evidence, sealed: they describe the row's person.
  detail_sealed      text NOT NULL,
  decision           text CHECK (decision IN ('accept', 'reject', 'choose', 'new')),
  decided_entity_id  uuid,
  decided_by_type    text CHECK (decided_by_type IN ('user', 'api_key')),
  decided_by_id      uuid,
  decided_at         timestamptz,
  applied_at         timestamptz,
  -- What applying the row did: the patient linked or created, or why it could not be.
  applied_entity_id  uuid,
  apply_error        text CHECK (length(apply_error) <= 500),
  PRIMARY KEY (job_id, record_index),
  CHECK ((decision IN ('accept', 'choose')) = (decided_entity_id IS NOT NULL) OR decision IS NULL)
);
CREATE INDEX reconciliation_job_records_band_idx ON reconciliation_job_records (job_id, band, record_index);

-- A patient's externalIds (source system -> member id) as rows, kept by a trigger, so that a
-- member id names at most one patient per practice and source: a second patient given the same
-- Allē member number is refused by the database, whichever route wrote it.
CREATE TABLE patient_external_ids (
  practice_id  uuid NOT NULL REFERENCES practices (id),
  source       text NOT NULL,
  external_id  text NOT NULL,
  patient_id   uuid NOT NULL REFERENCES patients (id),
  PRIMARY KEY (practice_id, source, external_id)
);
CREATE INDEX patient_external_ids_patient_idx ON patient_external_ids (patient_id);

CREATE FUNCTION sync_patient_external_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.external_ids IS NOT DISTINCT FROM OLD.external_ids THEN
    RETURN NEW;
  END IF;
  DELETE FROM patient_external_ids WHERE patient_id = NEW.id;
  INSERT INTO patient_external_ids (practice_id, source, external_id, patient_id)
  SELECT NEW.practice_id, lower(e.key), e.value, NEW.id
    FROM jsonb_each_text(NEW.external_ids) AS e
   WHERE e.value <> '';
  RETURN NEW;
EXCEPTION WHEN unique_violation THEN
  RAISE EXCEPTION 'external id already belongs to another patient of this practice'
    USING ERRCODE = 'unique_violation', CONSTRAINT = 'patient_external_ids_pkey';
END $$;

CREATE TRIGGER patients_external_ids_sync
  AFTER INSERT OR UPDATE OF external_ids ON patients
  FOR EACH ROW EXECUTE FUNCTION sync_patient_external_ids();

-- Patients stored before this migration.
INSERT INTO patient_external_ids (practice_id, source, external_id, patient_id)
SELECT DISTINCT ON (p.practice_id, lower(e.key), e.value) p.practice_id, lower(e.key), e.value, p.id
  FROM patients p, jsonb_each_text(p.external_ids) AS e
 WHERE e.value <> ''
 ORDER BY p.practice_id, lower(e.key), e.value, p.created_at;

ALTER TABLE reconciliation_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_job_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_job_chunks FORCE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_job_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_job_records FORCE ROW LEVEL SECURITY;
ALTER TABLE patient_external_ids ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_external_ids FORCE ROW LEVEL SECURITY;

CREATE POLICY practice_isolation ON reconciliation_jobs TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON reconciliation_job_chunks TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON reconciliation_job_records TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON patient_external_ids TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
-- The job runner claims across practices (then works inside the job's practice).
CREATE POLICY system_access ON reconciliation_jobs TO medspa_system USING (true);
CREATE POLICY system_access ON patient_external_ids TO medspa_system USING (true);

GRANT SELECT, INSERT, UPDATE ON reconciliation_jobs TO medspa_app;
GRANT SELECT, INSERT, DELETE ON reconciliation_job_chunks TO medspa_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON reconciliation_job_records TO medspa_app;
GRANT SELECT, INSERT, DELETE ON patient_external_ids TO medspa_app;
GRANT SELECT, UPDATE ON reconciliation_jobs TO medspa_system;
GRANT SELECT, INSERT, DELETE ON patient_external_ids TO medspa_system;
