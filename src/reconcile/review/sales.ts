// TRANSACTIONS: the sales side of a job. A sale is linked when a redemption row of the job links
// to it now: accepted (decided accept/choose, or in the accepted band with no decision), or still
// proposed in the review band with no decision. Every other sale is unmatched: a sale that no
// reward discounted, or whose redemption a reviewer rejected. Computed from the rows and the
// decisions at read time, so a decision shows at once.
import { acceptedEntity } from './apply.js';
import type { RecordRow } from './store.js';

export interface SaleLine {
  /** 0-based data row of the sales file (or of the practice's sales snapshot). */
  saleIndex: number;
  entityId: string;
  /** Redemption rows linked to this sale. */
  linkedBy: number[];
  row: Record<string, unknown>;
}

/** The redemption row's current link, if any. */
export function currentLink(record: RecordRow): string | null {
  return acceptedEntity(record) ?? (record.decision === null && record.band === 'review' ? record.entity_id : null);
}

export function saleLines(records: readonly RecordRow[], saleIds: readonly string[], saleRows: readonly unknown[]): SaleLine[] {
  const linkedBy = new Map<string, number[]>();
  for (const record of records) {
    const link = currentLink(record);
    if (link === null) continue;
    const list = linkedBy.get(link) ?? [];
    list.push(record.record_index);
    linkedBy.set(link, list);
  }
  return saleIds.map((entityId, saleIndex) => ({
    saleIndex, entityId, linkedBy: linkedBy.get(entityId) ?? [], row: (saleRows[saleIndex] ?? {}) as Record<string, unknown>,
  }));
}
