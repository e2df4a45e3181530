// The one place where a job's PHI meets the database: the uploaded rows and each result row's
// candidates and evidence, sealed with AES-256-GCM under the practice's data key (the keyring of
// db/field-encryption.ts, like the patients' PHI) and bound to the job (and the chunk or row), so a
// sealed value copied onto another job or row does not open. Stored as "k<version>:<sealed>", the
// data key version first. Values written before per-practice keys ("v1.…", the secret box under a
// key derived from ENCRYPTION_KEY) still open, so jobs created before the upgrade stay readable.
import { createSecretBox, type SecretBox } from '../../auth/secret-box.js';
import type { Queryable } from '../../db/database.js';
import type { PracticeKeys } from '../../db/field-encryption.js';

/** Rows per sealed chunk: large enough for few statements, small enough for a modest statement each. */
export const CHUNK_ROWS = 5000;
const ROWS_INFO = 'medspasync-pro reconciliation-job-rows';
const CHUNKS = 'reconciliation_job_chunks';
const RECORDS = 'reconciliation_job_records';
const VERSIONED = /^k(\d+):/;

export type ChunkPart = 'input' | 'practice_input';

export class JobVault {
  private readonly legacy: SecretBox;

  constructor(masterSecret: string) {
    this.legacy = createSecretBox(masterSecret, ROWS_INFO);
  }

  /** The vault for one practice's jobs: load the keys before the transaction (PGlite runs one at a time). */
  for(keys: PracticeKeys): PracticeJobVault {
    return new PracticeJobVault(keys, this.legacy);
  }
}

export class PracticeJobVault {
  constructor(
    /** The practice's keys (the practice's own records that a job reads are opened with them too). */
    readonly keys: PracticeKeys,
    private readonly legacy: SecretBox,
  ) {}

  private seal(table: string, rowId: string, value: unknown): string {
    const { sealed, version } = this.keys.seal(table, rowId, value);
    return `k${version}:${sealed}`;
  }

  private open<T>(table: string, rowId: string, stored: string, legacyAad: string): T {
    const versioned = VERSIONED.exec(stored);
    if (versioned === null) return JSON.parse(this.legacy.open(stored, legacyAad).toString('utf8')) as T;
    return this.keys.open<T>(table, rowId, Number(versioned[1]), stored.slice(versioned[0].length), false);
  }

  private openChunk(jobId: string, part: ChunkPart, seq: number, sealed: string): unknown[] {
    return this.open<unknown[]>(CHUNKS, `${jobId}:${part}:${seq}`, sealed, `${jobId}:${part}:${seq}`);
  }

  /** Stores `rows` as sealed chunks of the job; returns how many chunks. */
  async storeRows(tx: Queryable, practiceId: string, jobId: string, part: ChunkPart, rows: readonly unknown[]): Promise<number> {
    let seq = 0;
    for (let start = 0; start < rows.length; start += CHUNK_ROWS, seq += 1) {
      const sealed = this.seal(CHUNKS, `${jobId}:${part}:${seq}`, rows.slice(start, start + CHUNK_ROWS));
      await tx.query(
        `INSERT INTO reconciliation_job_chunks (job_id, practice_id, part, seq, sealed) VALUES ($1, $2, $3, $4, $5)`,
        [jobId, practiceId, part, seq, sealed],
      );
    }
    return seq;
  }

  /** Deletes the job's rows of `part` (a re-run replaces the snapshot it took). */
  async deleteRows(tx: Queryable, jobId: string, part: ChunkPart): Promise<void> {
    await tx.query(`DELETE FROM reconciliation_job_chunks WHERE job_id = $1 AND part = $2`, [jobId, part]);
  }

  /** The job's rows of `part`, in upload order. */
  async loadRows(tx: Queryable, jobId: string, part: ChunkPart): Promise<unknown[]> {
    const { rows } = await tx.query<{ seq: number; sealed: string }>(
      `SELECT seq, sealed FROM reconciliation_job_chunks WHERE job_id = $1 AND part = $2 ORDER BY seq`,
      [jobId, part],
    );
    const out: unknown[] = [];
    for (const row of rows) for (const item of this.openChunk(jobId, part, row.seq, row.sealed)) out.push(item);
    return out;
  }

  /** Rows number from..to (exclusive) of `part`, opening only the chunks that hold them. */
  async loadRowRange(tx: Queryable, jobId: string, part: ChunkPart, from: number, to: number): Promise<Map<number, unknown>> {
    const first = Math.floor(from / CHUNK_ROWS);
    const last = Math.floor(Math.max(from, to - 1) / CHUNK_ROWS);
    const { rows } = await tx.query<{ seq: number; sealed: string }>(
      `SELECT seq, sealed FROM reconciliation_job_chunks WHERE job_id = $1 AND part = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq`,
      [jobId, part, first, last],
    );
    const out = new Map<number, unknown>();
    for (const row of rows) {
      this.openChunk(jobId, part, row.seq, row.sealed).forEach((item, offset) => {
        const index = row.seq * CHUNK_ROWS + offset;
        if (index >= from && index < to) out.set(index, item);
      });
    }
    return out;
  }

  sealDetail(jobId: string, recordIndex: number, detail: unknown): string {
    return this.seal(RECORDS, `${jobId}:record:${recordIndex}`, detail);
  }

  openDetail<T>(jobId: string, recordIndex: number, sealed: string): T {
    return this.open<T>(RECORDS, `${jobId}:record:${recordIndex}`, sealed, `${jobId}:record:${recordIndex}`);
  }
}
