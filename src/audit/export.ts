// Audit export (GET /v1/audit-events/export) and its offline verifier (npm run cli --
// verify-audit-export FILE). An export is the practice's sealed events of a time range, rounded out
// to whole seals, each seal followed by the events it covers, so that a verifier without the
// database can recompute every event digest, every seal hash and every link of the chain.
// docs/hipaa.md describes the format line by line.
//
// Records, one per line (NDJSON, or the same records as CSV rows):
//   export  the header: practice, range, and `previousSeal` (the chain link into the first seal)
//   seal    a seal as stored: seq, transaction range, the events' digests, prev_hash, hash
//   event   one covered event as its canonical text (EVENT_CANONICAL), exactly what was hashed
//   end     how many seals and events the file holds: a truncated file fails
import { createHash } from 'node:crypto';
import type { Database } from '../db/database.js';
import { withPractice, withSystem } from '../db/scope.js';
import { bytes, chainStart, EVENT_CANONICAL, sealHash, type ChainHead } from './audit.js';

export const EXPORT_FORMAT = 'medspasync-audit-export';
export const EXPORT_VERSION = 1;
export type ExportFormat = 'ndjson' | 'csv';

/** The canonical array's positions (EVENT_CANONICAL's order). */
export const CANONICAL_FIELDS = [
  'id', 'practiceId', 'occurredAt', 'actorType', 'actorId', 'action', 'resourceType', 'resourceIds',
  'outcome', 'ip', 'userAgent', 'requestId', 'correlationId', 'details', 'xactId',
] as const;
const XACT_INDEX = CANONICAL_FIELDS.indexOf('xactId');

interface ExportHeader {
  type: 'export';
  format: typeof EXPORT_FORMAT;
  version: number;
  practiceId: string;
  from: string | null;
  to: string;
  exportedAt: string;
  /** The seal before the first one in the file (or the purge point, or the genesis at seq 0). */
  previousSeal: { seq: number; hash: string; xactTo: string } | null;
}

interface SealRecord {
  type: 'seal';
  seq: number;
  xactFrom: string;
  xactTo: string;
  eventCount: number;
  /** SHA-256 digests of the covered events, hex, in event id order. */
  eventDigests: string;
  prevHash: string;
  hash: string;
  sealedAt: string;
}

interface EventRecord {
  type: 'event';
  seal: number;
  canonical: string;
}

interface EndRecord {
  type: 'end';
  seals: number;
  events: number;
}

type ExportRecord = ExportHeader | SealRecord | EventRecord | EndRecord;

// ------------------------------------------------------------------------------------- CSV

/** CSV columns: an event's readable fields (checked against its canonical text) and the records' fields. */
const CSV_COLUMNS = [
  'record', 'seal_seq', 'xact_from', 'xact_to', 'event_count', 'event_digests', 'prev_hash', 'hash', 'sealed_at',
  'event_id', 'occurred_at', 'actor_type', 'actor_id', 'action', 'resource_type', 'resource_ids', 'outcome', 'ip',
  'canonical',
] as const;
const READABLE: Partial<Record<(typeof CSV_COLUMNS)[number], (typeof CANONICAL_FIELDS)[number]>> = {
  event_id: 'id', occurred_at: 'occurredAt', actor_type: 'actorType', actor_id: 'actorId', action: 'action',
  resource_type: 'resourceType', resource_ids: 'resourceIds', outcome: 'outcome', ip: 'ip',
};

/**
 * A value as a spreadsheet cell: one line, and never a formula (a leading = + - @ gets a quote
 * mark). The writer and the verifier both use this, so a readable cell is checked exactly.
 */
export function readableCell(value: unknown): string {
  const text = value === null || value === undefined ? '' : Array.isArray(value) ? value.join(' ') : String(value);
  const oneLine = text.replace(/[\r\n\t]/g, ' ');
  return /^[=+\-@]/.test(oneLine) ? `'${oneLine}` : oneLine;
}

const csvField = (value: string) => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);

function csvRow(record: ExportRecord): string {
  const cells: Partial<Record<(typeof CSV_COLUMNS)[number], string>> = { record: record.type };
  if (record.type === 'seal') {
    Object.assign(cells, {
      seal_seq: String(record.seq), xact_from: record.xactFrom, xact_to: record.xactTo, event_count: String(record.eventCount),
      event_digests: record.eventDigests, prev_hash: record.prevHash, hash: record.hash, sealed_at: record.sealedAt,
    });
  } else if (record.type === 'event') {
    const fields = JSON.parse(record.canonical) as unknown[];
    cells.seal_seq = String(record.seal);
    for (const [column, field] of Object.entries(READABLE)) cells[column as keyof typeof cells] = readableCell(fields[CANONICAL_FIELDS.indexOf(field)]);
    cells.canonical = record.canonical;
  } else {
    // The header and the end record travel whole, as JSON, in the canonical column.
    cells.canonical = JSON.stringify(record);
  }
  return CSV_COLUMNS.map((column) => csvField(cells[column] ?? '')).join(',');
}

/** One CSV line into its cells (RFC 4180 quoting; records never span lines). */
function parseCsvLine(line: string): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const quote = line.indexOf('"', i);
        if (quote === -1) throw new Error('unterminated quoted field');
        value += line.slice(i, quote);
        if (line[quote + 1] === '"') {
          value += '"';
          i = quote + 2;
        } else {
          i = quote + 1;
          break;
        }
      }
      cells.push(value);
    } else {
      const comma = line.indexOf(',', i);
      cells.push(line.slice(i, comma === -1 ? line.length : comma));
      i = comma === -1 ? line.length : comma;
    }
    if (i >= line.length) return cells;
    if (line[i] !== ',') throw new Error('text after a quoted field');
    i++;
  }
}

function recordFromCsv(line: string): ExportRecord {
  const cells = parseCsvLine(line);
  if (cells.length !== CSV_COLUMNS.length) throw new Error(`${cells.length} columns, expected ${CSV_COLUMNS.length}`);
  const cell = (column: (typeof CSV_COLUMNS)[number]) => cells[CSV_COLUMNS.indexOf(column)]!;
  switch (cell('record')) {
    case 'seal':
      return {
        type: 'seal', seq: Number(cell('seal_seq')), xactFrom: cell('xact_from'), xactTo: cell('xact_to'),
        eventCount: Number(cell('event_count')), eventDigests: cell('event_digests'), prevHash: cell('prev_hash'),
        hash: cell('hash'), sealedAt: cell('sealed_at'),
      };
    case 'event': {
      const canonical = cell('canonical');
      const fields = parseCanonical(canonical);
      for (const [column, field] of Object.entries(READABLE)) {
        if (cell(column as keyof typeof READABLE) !== readableCell(fields[CANONICAL_FIELDS.indexOf(field)])) {
          throw new Error(`column ${column} does not match the event's canonical text`);
        }
      }
      return { type: 'event', seal: Number(cell('seal_seq')), canonical };
    }
    case 'export':
    case 'end':
      return JSON.parse(cell('canonical')) as ExportRecord;
    default:
      throw new Error(`unknown record "${cell('record')}"`);
  }
}

// ----------------------------------------------------------------------------------- writing

const serialise = (format: ExportFormat, record: ExportRecord) => `${format === 'csv' ? csvRow(record) : JSON.stringify(record)}\n`;

const SEAL_PAGE = 200;
const EVENT_PAGE = 1000;

interface SealRow {
  seq: string;
  xact_from: string;
  xact_to: string;
  event_count: number;
  event_digests: Uint8Array;
  prev_hash: string;
  hash: string;
  sealed_at: Date;
}

const SEAL_COLUMNS = `seq::text AS seq, xact_from::text AS xact_from, xact_to::text AS xact_to, event_count, event_digests,
  prev_hash, hash, sealed_at`;

/**
 * The export as chunks of text, produced page by page (200 seals, 1,000 events per query): memory
 * stays flat whatever the range. Only events below `sealedThrough` (sealed) are included; a range
 * is rounded out to the whole seals that cover its events.
 */
export async function* auditExport(
  db: Database,
  options: { practiceId: string; from: string | null; to: string; format: ExportFormat; sealedThrough: string },
): AsyncGenerator<string> {
  const { practiceId, format } = options;
  if (format === 'csv') yield `${CSV_COLUMNS.join(',')}\n`;
  // The transactions of the range's sealed events bound the seals to export.
  const bounds = await withPractice(db, practiceId, async (tx) =>
    (await tx.query<{ lo: string | null; hi: string | null }>(
      `SELECT min(xact_id)::text AS lo, max(xact_id)::text AS hi FROM audit_events
        WHERE practice_id = $1 AND ($2::timestamptz IS NULL OR occurred_at >= $2) AND occurred_at < $3
          AND xact_id < $4::xid8`,
      [practiceId, options.from, options.to, options.sealedThrough],
    )).rows[0]!,
  );
  const pageOfSeals = (afterSeq: string) =>
    withSystem(db, async (tx) =>
      (await tx.query<SealRow>(
        // Qualified: ORDER BY seq would sort by the text alias (10 before 2).
        `SELECT ${SEAL_COLUMNS} FROM audit_seals s
          WHERE s.chain_key = $1 AND s.xact_to > $2::xid8 AND s.xact_from <= $3::xid8 AND s.seq > $4::bigint
          ORDER BY s.seq LIMIT ${SEAL_PAGE}`,
        [practiceId, bounds.lo, bounds.hi, afterSeq],
      )).rows,
    );
  let seals = bounds.lo === null ? [] : await pageOfSeals('0');
  const previousSeal = seals[0] === undefined ? null : await sealBefore(db, practiceId, Number(seals[0].seq));
  yield serialise(format, {
    type: 'export', format: EXPORT_FORMAT, version: EXPORT_VERSION, practiceId, from: options.from, to: options.to,
    exportedAt: new Date().toISOString(), previousSeal,
  });
  let sealCount = 0;
  let eventCount = 0;
  while (seals.length > 0) {
    for (const seal of seals) {
      yield serialise(format, {
        type: 'seal', seq: Number(seal.seq), xactFrom: seal.xact_from, xactTo: seal.xact_to, eventCount: seal.event_count,
        eventDigests: bytes(seal.event_digests).toString('hex'), prevHash: seal.prev_hash, hash: seal.hash,
        sealedAt: seal.sealed_at.toISOString(),
      });
      sealCount++;
      let afterId = 0;
      for (;;) {
        const { rows } = await withPractice(db, practiceId, (tx) =>
          tx.query<{ id: string; canonical: string }>(
            `SELECT e.id::text AS id, ${EVENT_CANONICAL} AS canonical FROM audit_events e
              WHERE e.practice_id = $1 AND e.xact_id >= $2::xid8 AND e.xact_id < $3::xid8 AND e.id > $4
              ORDER BY e.id LIMIT ${EVENT_PAGE}`,
            [practiceId, seal.xact_from, seal.xact_to, afterId],
          ),
        );
        let chunk = '';
        for (const row of rows) chunk += serialise(format, { type: 'event', seal: Number(seal.seq), canonical: row.canonical });
        if (chunk !== '') yield chunk;
        eventCount += rows.length;
        if (rows.length < EVENT_PAGE) break;
        afterId = Number(rows.at(-1)!.id);
      }
    }
    seals = seals.length < SEAL_PAGE ? [] : await pageOfSeals(seals.at(-1)!.seq);
  }
  yield serialise(format, { type: 'end', seals: sealCount, events: eventCount });
}

/** The chain link into seal `seq`: the seal before it, or the purge point / genesis it starts from. */
async function sealBefore(db: Database, chainKey: string, seq: number): Promise<ChainHead> {
  return withSystem(db, async (tx) => {
    const { rows } = await tx.query<{ hash: string; xact_to: string }>(
      'SELECT hash, xact_to::text AS xact_to FROM audit_seals WHERE chain_key = $1 AND seq = $2',
      [chainKey, seq - 1],
    );
    if (rows[0] !== undefined) return { seq: seq - 1, hash: rows[0].hash, xactTo: rows[0].xact_to };
    return chainStart(tx, chainKey);
  });
}

// --------------------------------------------------------------------------------- verifying

export type ExportVerification =
  | { ok: true; seals: number; events: number; head: { seq: number; hash: string } | null }
  | { ok: false; line: number; message: string };

class BadLine extends Error {}

function parseCanonical(canonical: string): unknown[] {
  let fields: unknown;
  try {
    fields = JSON.parse(canonical);
  } catch {
    throw new BadLine('the canonical text is not JSON');
  }
  if (!Array.isArray(fields) || fields.length !== CANONICAL_FIELDS.length) throw new BadLine('the canonical text is not an event');
  return fields;
}

/**
 * Verifies an export from its lines alone: the header, every seal's hash and its link to the one
 * before, every event's digest at its place in its seal, each seal's event count, and the end
 * record's totals. Returns the first bad line (1-based). Proves the file is whole and internally
 * consistent; that it is the practice's real chain is shown by comparing the last seal's hash
 * with the live system's (GET /v1/audit-events/verify seals and checks the same chain).
 */
export async function verifyAuditExport(lines: AsyncIterable<string>): Promise<ExportVerification> {
  let lineNo = 0;
  let format: ExportFormat | null = null;
  let header: ExportHeader | null = null;
  let prev: { seq: number; hash: string; xactTo: string } | null = null;
  let current: { seal: SealRecord; digests: Buffer; next: number; line: number } | null = null;
  let seals = 0;
  let events = 0;
  let ended = false;

  const finishSeal = () => {
    if (current !== null && current.next !== current.seal.eventCount) {
      throw new BadLine(`seal ${current.seal.seq} lists ${current.seal.eventCount} events, the file has ${current.next} (line ${current.line})`);
    }
  };

  try {
    for await (const raw of lines) {
      lineNo++;
      const line = raw.replace(/\r$/, '');
      if (format === null) {
        if (line === CSV_COLUMNS.join(',')) {
          format = 'csv';
          continue;
        }
        format = 'ndjson';
      }
      if (line === '') throw new BadLine('empty line');
      if (ended) throw new BadLine('text after the end record');
      let record: ExportRecord;
      try {
        record = format === 'csv' ? recordFromCsv(line) : (JSON.parse(line) as ExportRecord);
      } catch (error) {
        throw new BadLine(error instanceof BadLine ? error.message : `not a record (${error instanceof Error ? error.message : String(error)})`);
      }
      if (header === null) {
        if (record.type !== 'export' || record.format !== EXPORT_FORMAT || record.version !== EXPORT_VERSION) {
          throw new BadLine(`not a ${EXPORT_FORMAT} version ${EXPORT_VERSION} file`);
        }
        header = record;
        prev = record.previousSeal;
        continue;
      }
      switch (record.type) {
        case 'seal': {
          finishSeal();
          const digests = Buffer.from(record.eventDigests, 'hex');
          if (!/^([0-9a-f]{64})+$/.test(record.eventDigests) || digests.length !== 32 * record.eventCount) {
            throw new BadLine(`seal ${record.seq}: its digests don't match its event count`);
          }
          if (prev === null || record.seq !== prev.seq + 1 || record.prevHash !== prev.hash || record.xactFrom !== prev.xactTo) {
            throw new BadLine(`seal ${record.seq} does not link to the seal before it`);
          }
          if (sealHash(record.prevHash, record.seq, record.xactFrom, record.xactTo, digests) !== record.hash) {
            throw new BadLine(`seal ${record.seq}: its hash does not match its content`);
          }
          current = { seal: record, digests, next: 0, line: lineNo };
          prev = { seq: record.seq, hash: record.hash, xactTo: record.xactTo };
          seals++;
          break;
        }
        case 'event': {
          if (current === null || record.seal !== current.seal.seq) throw new BadLine('an event outside its seal');
          if (typeof record.canonical !== 'string') throw new BadLine('an event without its canonical text');
          const fields = parseCanonical(record.canonical);
          const digest = createHash('sha256').update(record.canonical, 'utf8').digest();
          const expected = current.digests.subarray(current.next * 32, (current.next + 1) * 32);
          if (expected.length === 0) throw new BadLine(`more events than seal ${current.seal.seq} covers`);
          if (!digest.equals(expected)) throw new BadLine(`event ${String(fields[0])} does not match its digest in seal ${current.seal.seq} (altered, or one before it removed)`);
          const xact = BigInt(String(fields[XACT_INDEX]));
          if (xact < BigInt(current.seal.xactFrom) || xact >= BigInt(current.seal.xactTo)) {
            throw new BadLine(`event ${String(fields[0])} lies outside its seal's transaction range`);
          }
          current.next++;
          events++;
          break;
        }
        case 'end':
          finishSeal();
          if (record.seals !== seals || record.events !== events) {
            throw new BadLine(`the end record counts ${record.seals} seals and ${record.events} events, the file has ${seals} and ${events}`);
          }
          ended = true;
          break;
        default:
          throw new BadLine('a second header, or an unknown record');
      }
    }
  } catch (error) {
    if (error instanceof BadLine) return { ok: false, line: lineNo, message: error.message };
    throw error;
  }
  if (header === null) return { ok: false, line: lineNo, message: 'no header: not an audit export' };
  if (!ended) return { ok: false, line: lineNo + 1, message: 'the file ends without its end record (truncated)' };
  return { ok: true, seals, events, head: prev === null ? null : { seq: prev.seq, hash: prev.hash } };
}
