-- Reconciliation runs: one row per POST /v1/ai/reconcile that produced a result, so the answer
-- can be fetched again (GET /v1/ai/reconcile/{runId}) and reviewed later.
--
-- What is stored is the engine's verdict, not the export: record positions, the practice's
-- patient/appointment ids, confidences and per-field scores. The incoming rows themselves (names,
-- dates of birth, phone numbers from another system) are never written, so a run row holds no
-- PHI beyond the link "input row N is patient X". Runs are immutable: the application may insert
-- and read them, never change or delete them.
CREATE TABLE reconciliation_runs (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  practice_id           uuid NOT NULL REFERENCES practices (id),
  created_by_type       text NOT NULL CHECK (created_by_type IN ('user', 'api_key')),
  created_by_id         uuid NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  algorithm             text NOT NULL CHECK (algorithm IN ('FUZZY_MATCH', 'ML_MODEL', 'HYBRID')),
  target                text NOT NULL CHECK (target IN ('PATIENTS', 'APPOINTMENTS')),
  confidence_threshold  double precision NOT NULL CHECK (confidence_threshold BETWEEN 0.1 AND 1.0),
  one_to_one            boolean NOT NULL DEFAULT false,
  record_count          integer NOT NULL CHECK (record_count BETWEEN 1 AND 10000),
  matched_count         integer NOT NULL CHECK (matched_count >= 0),
  unmatched_count       integer NOT NULL CHECK (unmatched_count >= 0),
  -- How many practice records the export was compared against (patients or appointments).
  candidate_count       integer NOT NULL CHECK (candidate_count >= 0),
  mean_confidence       double precision NOT NULL CHECK (mean_confidence BETWEEN 0 AND 1),
  processing_ms         double precision NOT NULL CHECK (processing_ms >= 0),
  -- ReconciliationMatch[] as returned, and the unmatched record positions.
  matches               jsonb NOT NULL CHECK (jsonb_typeof(matches) = 'array'),
  unmatched             jsonb NOT NULL CHECK (jsonb_typeof(unmatched) = 'array'),
  CHECK (matched_count + unmatched_count = record_count)
);
CREATE INDEX reconciliation_runs_practice_created_idx ON reconciliation_runs (practice_id, created_at DESC, id DESC);

ALTER TABLE reconciliation_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY practice_isolation ON reconciliation_runs TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY system_access ON reconciliation_runs TO medspa_system USING (true);

GRANT SELECT, INSERT ON reconciliation_runs TO medspa_app;
GRANT SELECT ON reconciliation_runs TO medspa_system;
