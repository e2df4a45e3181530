// The request body of POST /v2/reconciliations as files: text/csv (streamed), application/json
// (an array of records, or {"data": [...]}), or multipart/form-data with the file in the field
// `file` (TRANSACTIONS: `redemptions` and `sales`). Only this module knows about content types.
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { AppError } from '../../http/errors.js';
import { jsonColumns } from './columns.js';
import { fileError, readCsv, tooLarge, type BadRow, type CsvEncoding, type InputLimits, type OnRowError } from './csv.js';

export interface InputFile {
  format: 'csv' | 'json';
  fileName: string | null;
  header: string[];
  rows: unknown[];
  badRows: BadRow[];
  badRowCount: number;
  encoding: CsvEncoding;
  delimiter: string | null;
  bytes: number;
}

export interface UploadOptions extends InputLimits {
  charset: CsvEncoding | undefined;
  onRowError: OnRowError;
  /** Multipart field names accepted, e.g. ['file'] or ['redemptions', 'sales']. */
  fields: readonly string[];
}

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;
const CHARSET_NAMES: Record<string, CsvEncoding> = {
  'utf-8': 'utf-8', utf8: 'utf-8',
  'windows-1252': 'windows-1252', cp1252: 'windows-1252', 'iso-8859-1': 'windows-1252', latin1: 'windows-1252',
};

/** A declared charset (query parameter or Content-Type parameter), or undefined; an unknown one is a 415. */
export function declaredCharset(value: string | undefined): CsvEncoding | undefined {
  if (value === undefined || value === '') return undefined;
  const known = CHARSET_NAMES[value.toLowerCase()];
  if (known === undefined) throw new AppError('UNSUPPORTED_MEDIA_TYPE', 415, `Unsupported charset "${value.slice(0, 40)}": send UTF-8 or windows-1252`);
  return known;
}

/** text/csv and multipart bodies reach the handler as streams: nothing is buffered before it reads them. */
export async function acceptFileBodies(app: FastifyInstance, maxBytes: number): Promise<void> {
  app.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) => done(null, payload));
  await app.register(multipart, { limits: { fileSize: maxBytes + 1, files: 2, fields: 20, parts: 22 } });
}

function jsonFile(parsed: unknown, limits: InputLimits, bytes: number, fileName: string | null): InputFile {
  const rows = Array.isArray(parsed) ? parsed : (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(rows)) throw fileError('A JSON upload is an array of records, or an object with the records in "data"');
  if (rows.length === 0) throw fileError('The file has no records');
  if (rows.length > limits.maxRows) throw tooLarge(limits, 'rows');
  const badRows: BadRow[] = [];
  rows.forEach((row, index) => {
    if (row === null || typeof row !== 'object' || Array.isArray(row)) badRows.push({ line: index + 1, column: null, message: 'is not an object' });
  });
  if (badRows.length > 0) throw fileError(`Record ${badRows[0]!.line} of the JSON is not an object`, badRows.slice(0, 100).map((b) => ({ field: `data.${b.line - 1}`, message: b.message })));
  return { format: 'json', fileName, header: jsonColumns(rows), rows, badRows: [], badRowCount: 0, encoding: 'utf-8', delimiter: null, bytes };
}

async function csvFile(stream: AsyncIterable<Buffer>, options: UploadOptions, charset: CsvEncoding | undefined, fileName: string | null): Promise<InputFile> {
  const parsed = await readCsv(stream, { ...options, charset });
  return { format: 'csv', fileName, ...parsed, rows: parsed.rows };
}

const isJsonName = (name: string | undefined, mime: string) => mime.includes('json') || (name ?? '').toLowerCase().endsWith('.json');

async function readJsonStream(stream: AsyncIterable<Buffer>, limits: InputLimits, fileName: string | null): Promise<InputFile> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += chunk.length;
    if (bytes > limits.maxBytes) throw tooLarge(limits, 'bytes');
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new AppError('INVALID_JSON', 400, 'The JSON file could not be parsed');
  }
  return jsonFile(parsed, limits, bytes, fileName);
}

/** The uploaded files by field name ("file" for a text/csv or JSON body). */
export async function readUpload(request: FastifyRequest, options: UploadOptions): Promise<Map<string, InputFile>> {
  const contentType = (request.headers['content-type'] ?? '').toLowerCase();
  const files = new Map<string, InputFile>();
  if (contentType.startsWith('multipart/form-data')) {
    for await (const part of request.parts()) {
      if (part.type !== 'file') continue;
      if (!options.fields.includes(part.fieldname)) {
        part.file.resume();
        throw fileError(`Unexpected file field "${part.fieldname.slice(0, 40)}": send ${options.fields.map((f) => `"${f}"`).join(' and ')}`);
      }
      const name = part.filename ? part.filename.slice(0, 255) : null;
      const file = isJsonName(part.filename, part.mimetype)
        ? await readJsonStream(part.file, options, name)
        : await csvFile(part.file, options, options.charset ?? declaredCharset(CHARSET.exec(part.mimetype)?.[1]), name);
      files.set(part.fieldname, file);
    }
    return files;
  }
  if (contentType.startsWith('text/csv') || contentType.startsWith('application/csv')) {
    const charset = options.charset ?? declaredCharset(CHARSET.exec(contentType)?.[1]);
    const declaredLength = Number(request.headers['content-length'] ?? 0);
    if (declaredLength > options.maxBytes) throw tooLarge(options, 'bytes');
    const body = request.body as Readable;
    try {
      // Not destroyed on a refusal: the rest is drained, so the client reads the 413 or 400.
      files.set('file', await csvFile(body.iterator({ destroyOnReturn: false }), options, charset, null));
    } catch (error) {
      body.resume();
      throw error;
    }
    return files;
  }
  if (contentType.startsWith('application/json')) {
    const bytes = Number(request.headers['content-length'] ?? 0);
    files.set('file', jsonFile(request.body, options, bytes, null));
    return files;
  }
  throw new AppError('UNSUPPORTED_MEDIA_TYPE', 415, 'Send the file as text/csv, application/json or multipart/form-data (field "file")');
}
