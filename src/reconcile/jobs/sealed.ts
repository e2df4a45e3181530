// The one place where a job's PHI meets the database: the uploaded rows and each result row's
// candidates and evidence, sealed with the secret box (AES-256-GCM) and bound to the job (and the
// chunk or row), so a sealed value copied onto another job or row does not open. Moving these to
// per-practice data keys means changing this module only.
import { createSecretBox, type SecretBox } from '../../auth/secret-box.js';
import type { Queryable } from '../../db/database.js';

/** Rows per sealed chunk: large enough for few statements, small enough for a modest statement each. */
export const CHUNK_ROWS = 5000;
const ROWS_INFO = 'medspasync-pro reconciliation-job-rows';

export type ChunkPart = 'input' | 'practice_input';

export class JobVault {
  private readonly box: SecretBox;

  constructor(masterSecret: string) {
    this.box = createSecretBox(masterSecret, ROWS_INFO);
  }

  /** Stores `rows` as sealed chunks of the job; returns how many chunks. */
  async storeRows(tx: Queryable, practiceId: string, jobId: string, part: ChunkPart, rows: readonly unknown[]): Promise<number> {
    let seq = 0;
    for (let start = 0; start < rows.length; start += CHUNK_ROWS, seq += 1) {
      const sealed = this.box.seal(JSON.stringify(rows.slice(start, start + CHUNK_ROWS)), `${jobId}:${part}:${seq}`);
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
    for (const row of rows) {
      const chunk = JSON.parse(this.box.open(row.sealed, `${jobId}:${part}:${row.seq}`).toString('utf8')) as unknown[];
      for (const item of chunk) out.push(item);
    }
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
      const chunk = JSON.parse(this.box.open(row.sealed, `${jobId}:${part}:${row.seq}`).toString('utf8')) as unknown[];
      chunk.forEach((item, offset) => {
        const index = row.seq * CHUNK_ROWS + offset;
        if (index >= from && index < to) out.set(index, item);
      });
    }
    return out;
  }

  sealDetail(jobId: string, recordIndex: number, detail: unknown): string {
    return this.box.seal(JSON.stringify(detail), `${jobId}:record:${recordIndex}`);
  }

  openDetail<T>(jobId: string, recordIndex: number, sealed: string): T {
    return JSON.parse(this.box.open(sealed, `${jobId}:record:${recordIndex}`).toString('utf8')) as T;
  }
}
