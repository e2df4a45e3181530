// The first start after migration 015 encrypts the patients stored before it. The master key lives
// in configuration, never in the database, so SQL alone can't do it: the application does, before
// it serves, one practice and one batch at a time, clearing each row's plaintext columns in the
// transaction that seals it. A start interrupted half-way simply continues at the next start.
import type { Database } from '../db/database.js';
import type { PhiKeyring } from '../db/field-encryption.js';
import { sealedJson, sealPatient, type PatientAddress } from '../db/patient-phi.js';
import { withSystem } from '../db/scope.js';
import { orderKeysForMany } from './store.js';

const BATCH_ROWS = 1000;

interface PlaintextRow {
  id: string;
  first_name: string;
  last_name: string;
  date_of_birth: string | null;
  email: string | null;
  phone_number: string | null;
  address: PatientAddress | null;
  notes: string | null;
}

/** Encrypts every patient row still in plaintext; returns how many. */
export async function encryptPlaintextPatients(db: Database, keyring: PhiKeyring): Promise<number> {
  const { rows: practices } = await withSystem(db, (tx) =>
    tx.query<{ practice_id: string }>(`SELECT DISTINCT practice_id FROM patients WHERE phi IS NULL`),
  );
  let total = 0;
  for (const { practice_id: practiceId } of practices) {
    const keys = await keyring.forPractice(practiceId);
    // The order keys of all of them at once: merging batch by batch would open the practice's
    // ordered rows once per batch.
    const order = await withSystem(db, async (tx) => {
      const { rows } = await tx.query<{ id: string; first_name: string; last_name: string }>(
        `SELECT id, first_name, last_name FROM patients WHERE practice_id = $1 AND phi IS NULL`,
        [practiceId],
      );
      return orderKeysForMany(tx, keys, practiceId, rows.map((row) => ({ id: row.id, names: { firstName: row.first_name, lastName: row.last_name } })));
    });
    for (;;) {
      const done = await withSystem(db, async (tx) => {
        const { rows } = await tx.query<PlaintextRow>(
          `SELECT id, first_name, last_name, to_char(date_of_birth, 'YYYY-MM-DD') AS date_of_birth, email, phone_number, address, notes
             FROM patients WHERE practice_id = $1 AND phi IS NULL ORDER BY id LIMIT $2 FOR UPDATE`,
          [practiceId, BATCH_ROWS],
        );
        if (rows.length === 0) return 0;
        const phis = rows.map((row) => ({
          id: row.id,
          phi: {
            firstName: row.first_name,
            lastName: row.last_name,
            dateOfBirth: row.date_of_birth,
            email: row.email,
            phoneNumber: row.phone_number,
            address: row.address,
            notes: row.notes,
          },
        }));
        const payload = phis.map(({ id, phi }) => ({ id, ...sealedJson(sealPatient(keys, id, phi)), name_order: order.get(id) }));
        await tx.query(
          `UPDATE patients p
              SET phi = r.phi, phi_key = r.phi_key, email_bidx = decode(r.email_bidx, 'hex'), phone_bidx = decode(r.phone_bidx, 'hex'),
                  name_dob_bidx = decode(r.name_dob_bidx, 'hex'), search_terms = r.search_terms::bigint[], name_order = r.name_order,
                  first_name = NULL, last_name = NULL, date_of_birth = NULL, email = NULL, phone_number = NULL, address = NULL, notes = NULL
             FROM jsonb_to_recordset($2::jsonb) AS r(id uuid, phi text, phi_key int, email_bidx text, phone_bidx text,
                  name_dob_bidx text, search_terms text, name_order text)
            WHERE p.practice_id = $1 AND p.id = r.id`,
          [practiceId, JSON.stringify(payload)],
        );
        return rows.length;
      });
      total += done;
      if (done < BATCH_ROWS) break;
    }
  }
  return total;
}
