-- Encryption of patients' PHI at rest (docs/security.md, "PHI encryption at rest").
--
-- The names, date of birth, email, phone, address and notes of a patient move into one sealed
-- document (phi, AES-256-GCM under the practice's data key version phi_key). What SQL still needs
-- is kept as keyed blind indexes (HMAC-SHA256 under the practice's index key): equality for the
-- duplicate rules, search terms for the list's search, and an order key for the list's name order.
-- The keys are made by the application (db/field-encryption.ts) and stored wrapped by the master
-- key from configuration, which never reaches the database: that is why rows stored before this
-- migration are encrypted by the application's first start after it (encryptPlaintextPatients),
-- in batches, before the server listens, and their plaintext columns are cleared as they go.

CREATE TABLE phi_data_keys (
  practice_id    uuid NOT NULL REFERENCES practices (id),
  -- 'data': seals rows, versioned (rotation adds one); 'index': the blind-index key, version 1.
  purpose        text NOT NULL CHECK (purpose IN ('data', 'index')),
  version        int NOT NULL CHECK (version >= 1),
  -- The key, AES-256-GCM under the master key (AAD: practice, purpose, version).
  wrapped        text NOT NULL,
  -- Fingerprint of the master key that wrapped it (start refuses a master key that matches none).
  master_key_id  text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (practice_id, purpose, version)
);
-- Keys are read and made on the cross-practice path only (the keyring, the rotation command).
ALTER TABLE phi_data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE phi_data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY system_access ON phi_data_keys TO medspa_system USING (true);
GRANT SELECT, INSERT, UPDATE ON phi_data_keys TO medspa_system;

ALTER TABLE patients
  ALTER COLUMN first_name DROP NOT NULL,
  ALTER COLUMN last_name DROP NOT NULL,
  ADD COLUMN phi           text,
  ADD COLUMN phi_key       int,
  ADD COLUMN email_bidx    bytea,
  ADD COLUMN phone_bidx    bytea,
  ADD COLUMN name_dob_bidx bytea,
  ADD COLUMN search_terms  bigint[] NOT NULL DEFAULT '{}',
  -- Fractional order key of (lower(last name), lower(first name)), assigned by the application
  -- between its neighbours; "C" collation: bytewise, the same on every server.
  ADD COLUMN name_order    text COLLATE "C",
  ADD CONSTRAINT patients_phi_key_check CHECK ((phi IS NULL) = (phi_key IS NULL)),
  -- Once sealed, no plaintext PHI stays beside it.
  ADD CONSTRAINT patients_phi_only_sealed CHECK (
    phi IS NULL OR (first_name IS NULL AND last_name IS NULL AND date_of_birth IS NULL AND email IS NULL
                    AND phone_number IS NULL AND address IS NULL AND notes IS NULL));

-- The plaintext indexes go (an index on a cleared column would still hold its old entries until
-- rebuilt); their blind-index successors decide the same duplicate rules.
DROP INDEX patients_practice_email_key;
DROP INDEX patients_practice_name_dob_key;
DROP INDEX patients_practice_name_idx;
DROP INDEX patients_practice_status_name_idx;
DROP INDEX patients_practice_phone_idx;

CREATE UNIQUE INDEX patients_practice_email_bidx_key ON patients (practice_id, email_bidx)
  WHERE email_bidx IS NOT NULL AND deleted_at IS NULL;
CREATE UNIQUE INDEX patients_practice_name_dob_bidx_key ON patients (practice_id, name_dob_bidx)
  WHERE name_dob_bidx IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX patients_practice_phone_bidx_idx ON patients (practice_id, phone_bidx) WHERE phone_bidx IS NOT NULL;
CREATE INDEX patients_practice_order_idx ON patients (practice_id, name_order, id);
CREATE INDEX patients_practice_status_order_idx ON patients (practice_id, status, name_order, id);
-- Rotation finds the rows still under an older data key.
CREATE INDEX patients_practice_phi_key_idx ON patients (practice_id, phi_key);
-- Search: every term of the query contained (@>); the candidates are verified after opening.
CREATE INDEX patients_search_terms_idx ON patients USING gin (search_terms);
