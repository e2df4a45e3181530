// Audit retention (docs/hipaa.md): events and seals are kept AUDIT_RETENTION_YEARS, at least six;
// past that, `npm run cli -- purge-audit` removes them, only as whole sealed ranges from the start
// of each chain, through the one database function allowed to delete (migration 012). Each purge
// leaves a purge point that verifyAuditChain() continues from, and is itself audited.
import type { Database } from '../db/database.js';
import { withSystem } from '../db/scope.js';
import { MIN_AUDIT_RETENTION_YEARS } from '../config.js';
import { recordAudit } from './audit.js';

export interface ChainPurge {
  chainKey: string;
  /** Seals fromSeq..throughSeq go, with the events they cover. */
  fromSeq: number;
  throughSeq: number;
  events: number;
}

export interface PurgeReport {
  cutoff: string;
  chains: ChainPurge[];
}

/** `years` calendar years before `now` (UTC). */
export function retentionCutoff(now: Date, years: number): Date {
  const cutoff = new Date(now);
  cutoff.setUTCFullYear(cutoff.getUTCFullYear() - years);
  return cutoff;
}

/**
 * Purges (or, with dryRun, only reports) every chain's seals sealed before the cutoff, oldest
 * first and contiguous, always keeping each chain's newest seal: the sealer continues from it.
 * A seal is sealed after every event it covers was written, so each purged event is older than
 * the cutoff too.
 */
export async function purgeExpiredAudit(
  db: Database,
  options: { retentionYears: number; now?: Date; dryRun?: boolean },
): Promise<PurgeReport> {
  if (!Number.isInteger(options.retentionYears) || options.retentionYears < MIN_AUDIT_RETENTION_YEARS) {
    throw new RangeError(`audit retention must be at least ${MIN_AUDIT_RETENTION_YEARS} years`);
  }
  const cutoff = retentionCutoff(options.now ?? new Date(), options.retentionYears);
  const { rows: candidates } = await withSystem(db, (tx) =>
    tx.query<{ chain_key: string; first_seq: string; through_seq: string }>(
      `SELECT s.chain_key, min(s.seq)::text AS first_seq,
              -- the last seal before the first one too young, never the newest
              (least(coalesce(min(s.seq) FILTER (WHERE s.sealed_at >= $1), max(s.seq) + 1), max(s.seq)) - 1)::text AS through_seq
         FROM audit_seals s GROUP BY s.chain_key ORDER BY s.chain_key`,
      [cutoff],
    ),
  );
  const chains: ChainPurge[] = [];
  for (const candidate of candidates) {
    const fromSeq = Number(candidate.first_seq);
    const throughSeq = Number(candidate.through_seq);
    if (throughSeq < fromSeq) continue;
    if (options.dryRun) {
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ events: string }>(
          'SELECT coalesce(sum(event_count), 0)::text AS events FROM audit_seals WHERE chain_key = $1 AND seq BETWEEN $2 AND $3',
          [candidate.chain_key, fromSeq, throughSeq],
        ),
      );
      chains.push({ chainKey: candidate.chain_key, fromSeq, throughSeq, events: Number(rows[0]!.events) });
      continue;
    }
    const events = await withSystem(db, async (tx) => {
      const { rows } = await tx.query<{ events: string }>('SELECT purge_audit_chain($1, $2, $3)::text AS events', [
        candidate.chain_key,
        throughSeq,
        cutoff,
      ]);
      const deleted = Number(rows[0]!.events);
      // Recorded in the same transaction, in the purged chain itself: the first retained seal's
      // neighbourhood says who purged what.
      await recordAudit(tx, {
        practiceId: candidate.chain_key === 'system' ? null : candidate.chain_key,
        actorType: 'system',
        actorId: null,
        action: 'audit.purged',
        resourceType: 'audit_seal',
        outcome: 'success',
        details: { via: 'cli', fromSeq, throughSeq, events: deleted, cutoff: cutoff.toISOString(), retentionYears: options.retentionYears },
      });
      return deleted;
    });
    chains.push({ chainKey: candidate.chain_key, fromSeq, throughSeq, events });
  }
  return { cutoff: cutoff.toISOString(), chains };
}
