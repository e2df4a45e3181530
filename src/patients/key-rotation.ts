// `npm run cli -- rotate-data-key --practice ID`: a new data key for the practice, and its patient
// rows re-encrypted under it online, one batch per transaction. Readers never wait and never fail:
// each row names the key version that sealed it, every version stays loadable, and a reader that
// meets a version it hasn't loaded reads the keys again (PhiKeyring.withKeys). Blind indexes use the
// practice's index key, which a data key rotation leaves alone, so search and the duplicate rules
// work throughout.
//
// Resumable: the work left is whatever rows are still under an older version. A rerun after an
// interruption finds them and continues under the newest key; only when none are left does a
// run add a new key. Instances that cached the keys before the rotation keep sealing new writes
// with the old key until their cache expires (DATA_KEY_CACHE_SECONDS): the run waits that long
// after adding the key and sweeps again, so it ends with every row under the new key.
import type { Database } from '../db/database.js';
import type { PhiKeyring } from '../db/field-encryption.js';
import { openPatient, sealPatient } from '../db/patient-phi.js';
import { withSystem } from '../db/scope.js';

export interface RotationProgress {
  version: number;
  /** Rows moved to `version` so far by this run. */
  moved: number;
  resumed: boolean;
}

export interface RotationOptions {
  batchSize?: number;
  /** Called after each committed batch (progress lines; tests interleave reads here). */
  onBatch?: (progress: RotationProgress) => void | Promise<void>;
  /** Stops after this many batches, as an interrupted run would (tests). */
  maxBatches?: number;
  sleep?: (ms: number) => Promise<void>;
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function rotateDataKey(db: Database, keyring: PhiKeyring, practiceId: string, options: RotationOptions = {}): Promise<RotationProgress & { complete: boolean }> {
  const batchSize = options.batchSize ?? 500;
  await keyring.reload(practiceId); // makes the practice's first keys if it has none yet
  const { version, resumed, createdAt } = await withSystem(db, async (tx) => {
    // One rotation per practice at a time.
    await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`rotate-data-key:${practiceId}`]);
    const { rows } = await tx.query<{ version: number; behind: boolean; created_at: Date | string }>(
      `SELECT k.version, k.created_at,
              EXISTS (SELECT 1 FROM patients p WHERE p.practice_id = $1 AND p.phi_key < k.version) AS behind
         FROM phi_data_keys k WHERE k.practice_id = $1 AND k.purpose = 'data' ORDER BY k.version DESC LIMIT 1`,
      [practiceId],
    );
    const newest = rows[0]!;
    if (newest.behind) return { version: Number(newest.version), resumed: true, createdAt: new Date(newest.created_at).getTime() };
    return { version: await keyring.addDataKey(tx, practiceId), resumed: false, createdAt: Date.now() };
  });
  const keys = await keyring.reload(practiceId);
  if (keys.activeVersion !== version) throw new Error(`data key version ${version} is not the practice's newest (${keys.activeVersion})`);
  const progress: RotationProgress = { version, moved: 0, resumed };
  let batches = 0;
  const sweep = async (): Promise<boolean> => {
    for (;;) {
      if (options.maxBatches !== undefined && batches >= options.maxBatches) return false;
      const moved = await withSystem(db, async (tx) => {
        // SKIP LOCKED: a row a request is changing now is taken by the next sweep.
        const { rows } = await tx.query<{ id: string; phi: string; phi_key: number }>(
          `SELECT id, phi, phi_key FROM patients WHERE practice_id = $1 AND phi_key < $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`,
          [practiceId, version, batchSize],
        );
        if (rows.length === 0) return 0;
        const payload = rows.map((row) => {
          const sealed = sealPatient(keys, row.id, openPatient(keys, row));
          return { id: row.id, phi: sealed.phi, phi_key: sealed.phi_key };
        });
        // Only the sealed document changes: its blind indexes are under the index key, unchanged.
        await tx.query(
          `UPDATE patients p SET phi = r.phi, phi_key = r.phi_key
             FROM jsonb_to_recordset($2::jsonb) AS r(id uuid, phi text, phi_key int)
            WHERE p.practice_id = $1 AND p.id = r.id`,
          [practiceId, JSON.stringify(payload)],
        );
        return rows.length;
      });
      if (moved === 0) return true;
      batches += 1;
      progress.moved += moved;
      await options.onBatch?.({ ...progress });
    }
  };
  if (!(await sweep())) return { ...progress, complete: false };
  // Other instances may still seal with the previous key until their key cache expires.
  const settle = createdAt + keyring.cacheSeconds * 1000 - Date.now();
  if (settle > 0) await (options.sleep ?? pause)(settle);
  const complete = await sweep();
  return { ...progress, complete };
}
