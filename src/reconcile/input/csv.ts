// CSV exports as people download them (Allē, Aspire, point-of-sale systems, spreadsheets):
// RFC 4180 through csv-parse's streaming parser, fed chunk by chunk, so a 100 MB file is never one
// JavaScript string. Around the parser: the byte encoding (UTF-8 with or without a BOM, or
// Windows-1252, detected from the first bytes or declared), the separator (`,` `;` tab `|`,
// detected from the header line), limits on bytes and rows, and errors that name the line and the
// column, never the file's contents (which are PHI).
import { isUtf8 } from 'node:buffer';
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { AppError, type ErrorDetail } from '../../http/errors.js';

export const CSV_ENCODINGS = ['utf-8', 'windows-1252'] as const;
export type CsvEncoding = (typeof CSV_ENCODINGS)[number];
export type OnRowError = 'fail' | 'skip';

export interface InputLimits {
  maxRows: number;
  maxBytes: number;
}

export interface CsvOptions extends InputLimits {
  /** Declared encoding (the `charset` parameter); detected when absent. */
  charset?: CsvEncoding | undefined;
  onRowError: OnRowError;
}

/** A data row that could not be read. `line` is the file's line (1 = the header line). */
export interface BadRow {
  line: number;
  column: string | null;
  message: string;
}

export interface ParsedRows {
  header: string[];
  /** One object per good data row, keyed by the header's names. */
  rows: Record<string, string>[];
  /** Rows left out (onRowError=skip); at most MAX_BAD_ROWS listed, badRowCount counts them all. */
  badRows: BadRow[];
  badRowCount: number;
  delimiter: string;
  encoding: CsvEncoding;
  bytes: number;
}

/** How many bad rows are listed one by one; the rest are only counted. */
export const MAX_BAD_ROWS = 1000;
/** A field longer than this is an unterminated quote swallowing the file, not data. */
export const MAX_FIELD_BYTES = 64 * 1024;
/** Bytes looked at to detect the encoding and the separator. */
const SNIFF_BYTES = 64 * 1024;
const SEPARATORS = [',', ';', '\t', '|'] as const;

/** A file that can't be read: 400 (or 413 for a limit) naming where. */
export function fileError(message: string, details: ErrorDetail[] = [], status = 400): AppError {
  return new AppError(status === 413 ? 'PAYLOAD_TOO_LARGE' : 'INVALID_FILE', status, message, details);
}

export const tooLarge = (limits: InputLimits, what: 'bytes' | 'rows') =>
  fileError(
    what === 'bytes'
      ? `The file is larger than ${Math.round(limits.maxBytes / 1024 / 1024)} MB, the limit per job`
      : `The file has more than ${limits.maxRows.toLocaleString('en-US')} data rows, the limit per job`,
    [],
    413,
  );

/** UTF-8 unless the bytes can't be (a trailing, cut-off character is forgiven: the next chunk has its end). */
export function detectEncoding(head: Buffer, complete: boolean): CsvEncoding {
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return 'utf-8';
  for (let cut = 0; cut <= (complete ? 0 : 3) && cut <= head.length; cut += 1) {
    if (isUtf8(head.subarray(0, head.length - cut))) return 'utf-8';
  }
  return 'windows-1252';
}

/** The separator that splits the header line most often (outside quotes); `,` when none does. */
export function detectDelimiter(text: string): string {
  let end = 0;
  let quoted = false;
  for (; end < text.length; end += 1) {
    const char = text[end];
    if (char === '"') quoted = !quoted;
    else if (!quoted && (char === '\n' || char === '\r')) break;
  }
  const headerLine = text.slice(0, end).replace(/"[^"]*"/g, '');
  let best: string = ',';
  let bestCount = 0;
  for (const separator of SEPARATORS) {
    const count = headerLine.split(separator).length - 1;
    if (count > bestCount) {
      best = separator;
      bestCount = count;
    }
  }
  return best;
}

/** Line and column (1-based) of the end of `text`, continuing from `line`/`column`. */
function advance(position: { line: number; column: number }, text: string): void {
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '\n') {
      position.line += 1;
      position.column = 1;
    } else if (text[i] !== '\r') position.column += 1;
  }
}

/**
 * Decodes byte chunks to text chunks. A byte that is not UTF-8 in a file read as UTF-8 stops the
 * read with its line and column: silently turning "Zoë" into "Zo\uFFFD" would change names.
 */
async function* decodeChunks(chunks: AsyncIterable<Buffer>, options: CsvOptions, stats: { bytes: number; encoding: CsvEncoding }): AsyncGenerator<string> {
  let head: Buffer[] = [];
  let headBytes = 0;
  let decoder: InstanceType<typeof TextDecoder> | null = null;
  const position = { line: 1, column: 1 };

  const decode = (bytes: Buffer, last: boolean): string => {
    try {
      const text = decoder!.decode(bytes, { stream: !last });
      advance(position, text);
      return text;
    } catch {
      // Where in this chunk: the text before the first undecodable byte.
      const loose = new TextDecoder('utf-8').decode(bytes, { stream: !last });
      advance(position, loose.slice(0, Math.max(0, loose.indexOf('\uFFFD'))));
      throw fileError(
        `The file is not valid UTF-8 at line ${position.line}, column ${position.column}: if it was saved as Windows-1252 (Excel on Windows), send it with charset=windows-1252`,
        [{ field: 'file', message: `line ${position.line}, column ${position.column}: bytes that are not UTF-8` }],
      );
    }
  };

  const start = (complete: boolean): string => {
    const bytes = Buffer.concat(head);
    head = [];
    stats.encoding = options.charset ?? detectEncoding(bytes, complete);
    // fatal only for UTF-8: every byte means something in Windows-1252. The BOM is dropped.
    decoder = new TextDecoder(stats.encoding, { fatal: stats.encoding === 'utf-8' });
    return decode(bytes, false);
  };

  for await (const chunk of chunks) {
    stats.bytes += chunk.length;
    if (stats.bytes > options.maxBytes) throw tooLarge(options, 'bytes');
    if (decoder === null) {
      head.push(chunk);
      headBytes += chunk.length;
      if (headBytes < SNIFF_BYTES) continue;
      yield start(false);
      continue;
    }
    const text = decode(chunk, false);
    if (text.length > 0) yield text;
  }
  if (decoder === null) yield start(true);
  const rest = decode(Buffer.alloc(0), true);
  if (rest.length > 0) yield rest;
}

/** Header names as given, blank ones named by position, repeats told apart: "Phone", "Phone (2)". */
export function headerNames(record: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return record.map((raw, index) => {
    const name = raw.trim() === '' ? `Column ${index + 1}` : raw.trim();
    const count = (seen.get(name.toLowerCase()) ?? 0) + 1;
    seen.set(name.toLowerCase(), count);
    return count === 1 ? name : `${name} (${count})`;
  });
}

interface CsvErrorLike {
  code?: string;
  lines?: number;
  column?: number | string;
}

const columnName = (header: readonly string[], column: number | string | undefined): string | null => {
  if (typeof column === 'string') return column;
  if (typeof column !== 'number') return null;
  return header[column] ?? `column ${column + 1}`;
};

/** csv-parse's error as ours: its code turned into words, the line and column kept, no file content. */
function describeParseError(error: CsvErrorLike, header: readonly string[], lastGoodLine: number): BadRow {
  const line = error.lines ?? 0;
  const column = columnName(header, error.column);
  switch (error.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      // csv-parse reports the end of the file; the quote opened on the line after the last record.
      return { line: lastGoodLine + 1, column, message: 'a quoted field is never closed (a missing "): the rest of the file was read as one field' };
    case 'CSV_MAX_RECORD_SIZE':
      return { line, column, message: `a field runs past ${MAX_FIELD_BYTES / 1024} KiB: probably a quote that is never closed` };
    case 'CSV_INVALID_CLOSING_QUOTE':
      return { line, column, message: 'a quote inside a quoted field is not doubled ("")' };
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return { line, column, message: 'characters after the closing quote of a field' };
    default:
      return { line, column, message: 'this line could not be read as CSV' };
  }
}

const where = (bad: BadRow) => `line ${bad.line}${bad.column === null ? '' : `, column "${bad.column}"`}`;

/** The 400 for a file whose rows can't all be read (and onRowError is not skip). */
export function badRowsError(bad: readonly BadRow[], total: number, skippable = true): AppError {
  const first = bad[0]!;
  const more = !skippable ? '' : total > 1 ? ` (${total} rows in all; send onRowError=skip to process the others)` : ' (send onRowError=skip to process the other rows)';
  return fileError(
    `The file could not be read at ${where(first)}: ${first.message}${more}`,
    bad.slice(0, 100).map((row) => ({ field: `line ${row.line}${row.column === null ? '' : `, column "${row.column}"`}`, message: row.message })),
  );
}

/**
 * Reads a CSV export into rows. Fails (400 naming line and column) on the first unreadable row,
 * unless onRowError is skip: then the bad rows are reported and the rest returned. A file broken
 * beyond a row (a quote never closed) always fails: what follows can't be told apart.
 */
export async function readCsv(chunks: AsyncIterable<Buffer>, options: CsvOptions): Promise<ParsedRows> {
  const stats = { bytes: 0, encoding: 'utf-8' as CsvEncoding };
  const text = decodeChunks(chunks, options, stats);
  let header: string[] | null = null;
  const rows: Record<string, string>[] = [];
  const badRows: BadRow[] = [];
  let badRowCount = 0;
  let delimiter = ',';
  const skipped: BadRow[] = [];
  let lastLine = 0;

  const noteBad = (bad: BadRow) => {
    if (options.onRowError === 'fail') throw badRowsError([bad], 1);
    badRowCount += 1;
    if (badRows.length < MAX_BAD_ROWS) badRows.push(bad);
  };

  const take = (record: string[], line: number) => {
    if (header === null) {
      header = headerNames(record);
      return;
    }
    if (record.every((field) => field.trim() === '')) return; // a blank row in a spreadsheet export
    if (record.length !== header.length) {
      noteBad({ line, column: null, message: `has ${record.length} fields where the header has ${header.length}` });
      return;
    }
    if (rows.length >= options.maxRows) throw tooLarge(options, 'rows');
    const row: Record<string, string> = {};
    for (let i = 0; i < header.length; i += 1) row[header[i]!] = record[i]!;
    rows.push(row);
  };

  try {
    const first = await text.next();
    if (!first.done) {
      delimiter = detectDelimiter(first.value);
      const parser = parse({
        delimiter,
        bom: true,
        info: true,
        relax_column_count: true,
        skip_empty_lines: true,
        max_record_size: MAX_FIELD_BYTES,
        skip_records_with_error: options.onRowError === 'skip',
      });
      parser.on('skip', (error: CsvErrorLike) => skipped.push(describeParseError(error, header ?? [], lastLine)));
      const source = Readable.from((async function* () {
        yield first.value;
        yield* text;
      })(), { objectMode: false });
      source.on('error', (error) => parser.destroy(error));
      // Flowing mode: each record is handled as the parser produces it, before any error that
      // follows it, so the header and the last good line are known when an error is reported.
      await new Promise<void>((resolve, reject) => {
        parser.on('data', (entry: { record: string[]; info: { lines: number } }) => {
          try {
            for (const bad of skipped.splice(0)) noteBad(bad);
            take(entry.record, entry.info.lines);
            lastLine = entry.info.lines;
          } catch (error) {
            source.destroy();
            parser.destroy(error as Error);
          }
        });
        parser.once('error', reject);
        parser.once('end', resolve);
        source.pipe(parser);
      });
      for (const bad of skipped.splice(0)) noteBad(bad);
    }
  } catch (error) {
    if (error instanceof AppError) throw error;
    // Past a broken quote nothing can be told apart: skipping cannot help, so it is not offered.
    throw badRowsError([describeParseError(error as CsvErrorLike, header ?? [], lastLine)], 1, false);
  }
  if (header === null) throw fileError('The file is empty: expected a header line naming the columns, then one line per record');
  if (rows.length === 0 && badRowCount === 0) throw fileError('The file has a header line but no data rows');
  return { header, rows, badRows, badRowCount, delimiter, encoding: stats.encoding, bytes: stats.bytes };
}
