-- TRANSACTIONS reconciliation jobs (docs/reconciliation.md, "Transactions"): a redemption's match
-- is a sale, named by the POS invoice number when the sales file has unique ones, by its row
-- ("row:12") otherwise, or by the appointment id when the practice's own sales are used. Those are
-- not all uuids, so a job row's chosen, decided and applied entity become text. Patients and
-- appointments keep being named by their uuid, written as text.
ALTER TABLE reconciliation_job_records
  ALTER COLUMN entity_id TYPE text USING entity_id::text,
  ALTER COLUMN decided_entity_id TYPE text USING decided_entity_id::text,
  ALTER COLUMN applied_entity_id TYPE text USING applied_entity_id::text;
ALTER TABLE reconciliation_job_records
  ADD CONSTRAINT reconciliation_job_records_entity_length CHECK (length(entity_id) <= 200 AND length(decided_entity_id) <= 200);
