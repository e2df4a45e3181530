-- Learning from reviewers' decisions (docs/reconciliation.md, "Learning from decisions";
-- src/reconcile/review/learning.ts, src/reconcile/engine/learning.ts).
--
-- A decided pair of a PATIENTS job is kept as its comparison levels only: one small integer per
-- field (0 = exact agreement, higher = weaker, -1 = missing on a side), never the values compared.
-- The levels and the label are what the engine needs; the row and the patient stay where they are.
CREATE TABLE reconciliation_labels (
  practice_id   uuid NOT NULL REFERENCES practices (id),
  job_id        uuid NOT NULL REFERENCES reconciliation_jobs (id) ON DELETE CASCADE,
  record_index  integer NOT NULL CHECK (record_index >= 0),
  -- The practice patient the row was compared with.
  entity_id     uuid NOT NULL,
  levels        smallint[] NOT NULL CHECK (cardinality(levels) BETWEEN 1 AND 32),
  is_match      boolean NOT NULL,
  -- The decision the label comes from (accept/choose: a match; reject/new: the suggestion is not).
  decision      text NOT NULL CHECK (decision IN ('accept', 'reject', 'choose', 'new')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, record_index, entity_id)
);
CREATE INDEX reconciliation_labels_practice_idx ON reconciliation_labels (practice_id);

-- The practice's model, one row per version: the label counts per field level it was fitted from
-- (what the engine takes), the training set's size and its leave-one-out metrics.
CREATE TABLE reconciliation_models (
  practice_id      uuid NOT NULL REFERENCES practices (id),
  version          integer NOT NULL CHECK (version >= 1),
  training_size    integer NOT NULL CHECK (training_size >= 0),
  match_count      integer NOT NULL CHECK (match_count >= 0),
  non_match_count  integer NOT NULL CHECK (non_match_count >= 0),
  counts           jsonb NOT NULL CHECK (jsonb_typeof(counts) = 'object'),
  metrics          jsonb NOT NULL CHECK (jsonb_typeof(metrics) = 'object'),
  -- The applied job whose decisions made this version.
  job_id           uuid REFERENCES reconciliation_jobs (id) ON DELETE SET NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (practice_id, version)
);

ALTER TABLE reconciliation_labels ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_labels FORCE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_models ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation_models FORCE ROW LEVEL SECURITY;

CREATE POLICY practice_isolation ON reconciliation_labels TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);
CREATE POLICY practice_isolation ON reconciliation_models TO medspa_app
  USING (practice_id = nullif(current_setting('app.practice_id', true), '')::uuid);

GRANT SELECT, INSERT ON reconciliation_labels TO medspa_app;
GRANT SELECT, INSERT ON reconciliation_models TO medspa_app;
