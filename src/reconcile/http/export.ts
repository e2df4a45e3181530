// The billing manager's export: every row (or only the exceptions) with the file's own columns,
// the band, the match, the decision and what applying it did.
import type { JobRow } from '../jobs/store.js';
import { acceptedEntity } from '../review/apply.js';
import type { RecordDetail, RecordRow } from '../review/store.js';
import type { SaleLine } from '../review/sales.js';

export interface ExportLine {
  recordIndex: number;
  band: string;
  confidence: number;
  matchedEntityId: string | null;
  decision: string | null;
  finalEntityId: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
  applied: boolean;
  applyError: string | null;
  evidence: string;
  row: Record<string, unknown>;
}

const isException = (record: RecordRow) => record.decision === 'reject' || (record.band !== 'accepted' && record.decision === null) || record.apply_error !== null;

export function exportRows(
  _job: JobRow, records: readonly RecordRow[], rows: ReadonlyMap<number, unknown>, which: 'all' | 'exceptions',
  detail: (record: RecordRow) => RecordDetail,
): ExportLine[] {
  return records
    .filter((record) => which === 'all' || isException(record))
    .map((record) => ({
      recordIndex: record.record_index,
      band: record.band,
      confidence: Number(record.confidence),
      matchedEntityId: record.entity_id,
      decision: record.decision,
      finalEntityId: record.applied_entity_id ?? acceptedEntity(record),
      decidedBy: record.decided_by_id,
      decidedAt: record.decided_at === null ? null : new Date(record.decided_at).toISOString(),
      applied: record.applied_at !== null,
      applyError: record.apply_error,
      evidence: detail(record).candidates[0]?.evidence.join(', ') ?? '',
      row: (rows.get(record.record_index) ?? {}) as Record<string, unknown>,
    }));
}

/** RFC 4180 quoting; a leading = + - @ is prefixed with ' so a spreadsheet never runs it as a formula. */
export function csvCell(value: unknown): string {
  let text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const FIXED = ['recordIndex', 'band', 'confidence', 'matchedEntityId', 'decision', 'finalEntityId', 'decidedBy', 'decidedAt', 'applied', 'applyError', 'evidence'] as const;

export function exportCsv(job: JobRow, lines: readonly ExportLine[]): string {
  const fileColumns = job.columns.map((c) => c.column);
  const header = [...FIXED, ...fileColumns.map((c) => `file: ${c}`)];
  const out = [header.map(csvCell).join(',')];
  for (const line of lines) {
    out.push([...FIXED.map((key) => csvCell(line[key])), ...fileColumns.map((c) => csvCell(line.row[c]))].join(','));
  }
  return `\uFEFF${out.join('\r\n')}\r\n`;
}

/** TRANSACTIONS: the sales no redemption links to, with the sales file's own columns. */
export function exportSalesCsv(columns: readonly string[], lines: readonly SaleLine[]): string {
  const header = ['saleIndex', 'entityId', ...columns.map((c) => `sale: ${c}`)];
  const out = [header.map(csvCell).join(',')];
  for (const line of lines) out.push([csvCell(line.saleIndex), csvCell(line.entityId), ...columns.map((c) => csvCell(line.row[c]))].join(','));
  return `\uFEFF${out.join('\r\n')}\r\n`;
}
