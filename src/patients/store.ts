// Patient SQL. Every function takes a practice-scoped transaction (withPractice) and also filters
// on practice_id itself: row-level security is the safety net, the filter is what the planner uses.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/database.js';
import type { PracticeKeys } from '../db/field-encryption.js';
import {
  compareNames,
  emailIndex,
  matchesSearch,
  nameDobIndex,
  openPatient,
  orderKeyBetween,
  orderKeysBetween,
  sealedJson,
  sealPatient,
  searchQuery,
  SEALED_COLUMNS,
  type PatientPhi,
  type SealedPatientColumns,
  type SearchQuery,
} from '../db/patient-phi.js';
import { isoFromUtcText, utcText } from '../db/timestamps.js';
import type { Address, DuplicateKey, PatientFields, PatientRecord, PatientStatus } from './model.js';

export interface PatientRow {
  id: string;
  /** The sealed PHI (db/patient-phi.ts) and the data key version that sealed it. */
  phi: string;
  phi_key: number;
  gender: string | null;
  status: PatientStatus;
  external_ids: Record<string, string>;
  /** utcText (db/timestamps.ts). */
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

const COLUMNS = `p.id, p.phi, p.phi_key, p.gender, p.status, p.external_ids, ${utcText('p.created_at')} AS created_at,
  ${utcText('p.updated_at')} AS updated_at, ${utcText('p.deleted_at')} AS deleted_at`;

function toRecord(keys: PracticeKeys, row: PatientRow): PatientRecord {
  const phi = openPatient(keys, row);
  return {
    id: row.id,
    firstName: phi.firstName,
    lastName: phi.lastName,
    dateOfBirth: phi.dateOfBirth,
    email: phi.email,
    phoneNumber: phi.phoneNumber,
    gender: row.gender,
    address: phi.address as Address | null,
    status: row.status,
    notes: phi.notes,
    externalIds: row.external_ids,
    createdAt: isoFromUtcText(row.created_at),
    updatedAt: isoFromUtcText(row.updated_at),
    deletedAt: row.deleted_at === null ? null : isoFromUtcText(row.deleted_at),
  };
}

/** Model field → column, for the writable fields stored in clear. jsonb columns are sent as JSON text. */
const PLAIN_COLUMNS: Record<'gender' | 'status' | 'externalIds', { column: string; json?: true }> = {
  gender: { column: 'gender' },
  status: { column: 'status' },
  externalIds: { column: 'external_ids', json: true },
};

const isPlainField = (field: string): field is keyof typeof PLAIN_COLUMNS => field in PLAIN_COLUMNS;

function plainValue(field: keyof typeof PLAIN_COLUMNS, value: unknown): unknown {
  if (PLAIN_COLUMNS[field].json) return value === null ? null : JSON.stringify(value);
  return value;
}

function phiOf(fields: Partial<PatientFields> & Pick<PatientFields, 'firstName' | 'lastName'>): PatientPhi {
  return {
    firstName: fields.firstName,
    lastName: fields.lastName,
    dateOfBirth: fields.dateOfBirth ?? null,
    email: fields.email ?? null,
    phoneNumber: fields.phoneNumber ?? null,
    address: fields.address ?? null,
    notes: fields.notes ?? null,
  };
}

const SEALED_ASSIGNMENT = `phi = $3, phi_key = $4, email_bidx = $5, phone_bidx = $6, name_dob_bidx = $7, search_terms = $8::bigint[]`;
const sealedValues = (sealed: SealedPatientColumns) =>
  [sealed.phi, sealed.phi_key, sealed.email_bidx, sealed.phone_bidx, sealed.name_dob_bidx, sealed.search_terms];

// Order keys are assigned between neighbours: concurrent writers of one practice take turns, or
// two could pick the same gap and the same key.
const lockOrder = (tx: Queryable, practiceId: string) =>
  tx.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`patient-order:${practiceId}`]);

/**
 * The order key for a patient named `names`, placed after every patient whose name sorts before
 * or equal to it: a binary search over the practice's order, opening one neighbour per probe
 * (about log2(n) probes, each an indexed OFFSET). `exceptId`: the patient being renamed.
 */
async function orderKeyFor(tx: Queryable, keys: PracticeKeys, practiceId: string, names: Pick<PatientPhi, 'firstName' | 'lastName'>, exceptId: string | null): Promise<string> {
  await lockOrder(tx, practiceId);
  const { rows: counted } = await tx.query<{ n: string }>(
    `SELECT count(*) AS n FROM patients p WHERE p.practice_id = $1 AND p.name_order IS NOT NULL AND p.id IS DISTINCT FROM $2`,
    [practiceId, exceptId],
  );
  let low = 0;
  let high = Number(counted[0]!.n);
  let lowKey = '';
  let highKey: string | null = null;
  while (low < high) {
    const middle = (low + high) >> 1;
    const { rows } = await tx.query<{ id: string; phi: string; phi_key: number; name_order: string }>(
      `SELECT p.id, p.phi, p.phi_key, p.name_order FROM patients p
        WHERE p.practice_id = $1 AND p.name_order IS NOT NULL AND p.id IS DISTINCT FROM $2
        ORDER BY p.name_order, p.id OFFSET $3 LIMIT 1`,
      [practiceId, exceptId, middle],
    );
    const row = rows[0]!;
    if (compareNames(openPatient(keys, row), names) <= 0) {
      low = middle + 1;
      lowKey = row.name_order;
    } else {
      high = middle;
      highKey = row.name_order;
    }
  }
  return orderKeyBetween(lowKey, highKey);
}

export async function insertPatient(
  tx: Queryable,
  keys: PracticeKeys,
  practiceId: string,
  fields: Pick<PatientFields, 'firstName' | 'lastName'> & Partial<PatientFields>,
): Promise<PatientRecord> {
  const id = randomUUID();
  const sealed = sealPatient(keys, id, phiOf(fields));
  const nameOrder = await orderKeyFor(tx, keys, practiceId, fields, null);
  const plain = (Object.entries(fields) as Array<[string, unknown]>).filter(
    (entry): entry is [keyof typeof PLAIN_COLUMNS, unknown] => isPlainField(entry[0]) && entry[1] !== undefined,
  );
  const values = [id, practiceId, ...sealedValues(sealed), nameOrder, ...plain.map(([field, value]) => plainValue(field, value))];
  const columns = ['id', 'practice_id', ...SEALED_COLUMNS, 'name_order', ...plain.map(([field]) => PLAIN_COLUMNS[field].column)];
  const { rows } = await tx.query<PatientRow>(
    `INSERT INTO patients AS p (${columns.join(', ')})
     VALUES (${values.map((_, i) => (columns[i] === 'search_terms' ? `$${i + 1}::bigint[]` : `$${i + 1}`)).join(', ')})
     RETURNING ${COLUMNS}`,
    values,
  );
  return toRecord(keys, rows[0]!);
}

/** One patient by id, as a statement (readInPractice) or in a transaction (findPatient). */
export function findPatientStatement(practiceId: string, id: string): { sql: string; params: unknown[] } {
  return { sql: `SELECT ${COLUMNS} FROM patients p WHERE p.practice_id = $1 AND p.id = $2`, params: [practiceId, id] };
}

export function patientFromRows(keys: PracticeKeys, rows: PatientRow[]): PatientRecord | null {
  return rows[0] === undefined ? null : toRecord(keys, rows[0]);
}

export async function findPatient(tx: Queryable, keys: PracticeKeys, practiceId: string, id: string): Promise<PatientRecord | null> {
  const { sql, params } = findPatientStatement(practiceId, id);
  return patientFromRows(keys, (await tx.query<PatientRow>(sql, params)).rows);
}

export interface Duplicate {
  id: string;
  /** Which rule matched. */
  rule: 'email' | 'nameAndDateOfBirth';
}

/**
 * The live (not deactivated) patient that `key` would duplicate, if any: same email, or same
 * name (case-insensitive) and date of birth, both compared through their blind indexes.
 * `exceptId` leaves out the patient being updated.
 */
export async function findDuplicate(
  tx: Queryable,
  keys: PracticeKeys,
  practiceId: string,
  key: DuplicateKey,
  exceptId: string | null = null,
): Promise<Duplicate | null> {
  const { rows } = await tx.query<{ id: string; email_match: boolean }>(
    `SELECT p.id, (p.email_bidx IS NOT DISTINCT FROM $2 AND $2 IS NOT NULL) AS email_match
       FROM patients p
      WHERE p.practice_id = $1 AND p.deleted_at IS NULL AND p.id IS DISTINCT FROM $4
        AND (p.email_bidx = $2 OR p.name_dob_bidx = $3)
      ORDER BY email_match DESC, p.created_at
      LIMIT 1`,
    [practiceId, emailIndex(keys, key.email), nameDobIndex(keys, key), exceptId],
  );
  const row = rows[0];
  return row === undefined ? null : { id: row.id, rule: row.email_match ? 'email' : 'nameAndDateOfBirth' };
}

/** Applies `changes`; reactivating (status ACTIVE or VIP) clears deleted_at. Null when not found. */
export async function updatePatient(
  tx: Queryable,
  keys: PracticeKeys,
  practiceId: string,
  id: string,
  changes: Partial<PatientFields>,
): Promise<PatientRecord | null> {
  const { rows: locked } = await tx.query<PatientRow>(`SELECT ${COLUMNS} FROM patients p WHERE p.practice_id = $1 AND p.id = $2 FOR UPDATE`, [practiceId, id]);
  if (locked[0] === undefined) return null;
  const current = toRecord(keys, locked[0]);
  const merged = { ...current, ...changes };
  const params: unknown[] = [practiceId, id, ...sealedValues(sealPatient(keys, id, phiOf(merged)))];
  const assignments = [SEALED_ASSIGNMENT];
  if (compareNames(current, merged) !== 0) {
    params.push(await orderKeyFor(tx, keys, practiceId, merged, id));
    assignments.push(`name_order = $${params.length}`);
  }
  for (const [field, value] of Object.entries(changes)) {
    if (!isPlainField(field) || value === undefined) continue;
    params.push(plainValue(field, value));
    assignments.push(`${PLAIN_COLUMNS[field].column} = $${params.length}`);
  }
  if (changes.status === 'ACTIVE' || changes.status === 'VIP') assignments.push('deleted_at = NULL');
  assignments.push('updated_at = now()');
  const { rows } = await tx.query<PatientRow>(
    `UPDATE patients AS p SET ${assignments.join(', ')}
      WHERE p.practice_id = $1 AND p.id = $2
      RETURNING ${COLUMNS}`,
    params,
  );
  return rows[0] === undefined ? null : toRecord(keys, rows[0]);
}

/** DELETE's meaning: INACTIVE and deleted_at, the row kept. The first deletedAt is kept on repeats. */
export async function deactivatePatient(tx: Queryable, keys: PracticeKeys, practiceId: string, id: string): Promise<PatientRecord | null> {
  const { rows } = await tx.query<PatientRow>(
    `UPDATE patients AS p
        SET status = 'INACTIVE', deleted_at = coalesce(p.deleted_at, now()), updated_at = now()
      WHERE p.practice_id = $1 AND p.id = $2
      RETURNING ${COLUMNS}`,
    [practiceId, id],
  );
  return rows[0] === undefined ? null : toRecord(keys, rows[0]);
}

export type PatientOrder = 'lastName' | '-lastName' | 'createdAt' | '-createdAt';

export interface PatientListOptions {
  page: number;
  limit: number;
  status?: PatientStatus | undefined;
  q?: string | undefined;
  sort: PatientOrder;
}

// Each order ends with the id, so equal names or timestamps still come back in one fixed order
// and a row can't appear on two pages. name_order is the application's order key of the names
// (they are sealed, so SQL can't sort them); the expressions match migration 015's indexes.
const ORDER_BY: Record<PatientOrder, string> = {
  lastName: 'p.name_order, p.id',
  '-lastName': 'p.name_order DESC, p.id DESC',
  createdAt: 'p.created_at, p.id',
  '-createdAt': 'p.created_at DESC, p.id DESC',
};

function listFilter(options: PatientListOptions, params: unknown[], search: SearchQuery | null): string {
  const conditions = ['p.practice_id = $1'];
  if (options.status !== undefined) {
    params.push(options.status);
    conditions.push(`p.status = $${params.length}`);
  }
  if (search !== null) {
    // Candidates hold every term of the query (GIN); which of them really match is decided after opening.
    const alternatives = search.termSets.map((terms) => {
      params.push(terms);
      return `p.search_terms @> $${params.length}::bigint[]`;
    });
    conditions.push(`(${alternatives.join(' OR ')})`);
  }
  return conditions.join(' AND ');
}

const COUNTER_COLUMNS: Record<PatientStatus | 'all', string> = {
  all: 'c.active + c.vip + c.inactive',
  ACTIVE: 'c.active',
  VIP: 'c.vip',
  INACTIVE: 'c.inactive',
};

/** Without a search the exact total is read from patient_counts (kept by triggers in the rows' transactions). */
function totalColumn(options: PatientListOptions): string {
  const column = COUNTER_COLUMNS[options.status ?? 'all'];
  return `coalesce((SELECT ${column} FROM patient_counts c WHERE c.practice_id = $1), 0)`;
}

const searchOf = (keys: PracticeKeys, options: PatientListOptions): SearchQuery | null => {
  const q = options.q?.trim();
  return q ? searchQuery(keys, q) : null;
};

/**
 * Without a search: one page with the exact total on every row, in one plain statement (cheap to
 * plan: measured ~30 % more throughput in PostgreSQL than joining a count subquery laterally); a
 * page past the end has no row to carry the total: listPatientsTotalStatement answers that case.
 * With a search: the candidates (searchCandidatesStatement, their ids bound by withCandidates) in
 * list order (the terms only narrow; the page and the exact total are what remains after opening
 * them, listPatientsResult).
 */
export function listPatientsStatement(keys: PracticeKeys, practiceId: string, options: PatientListOptions): { sql: string; params: unknown[] } {
  const params: unknown[] = [practiceId];
  const search = searchOf(keys, options);
  const where = listFilter(options, params, search);
  if (search !== null) {
    return { sql: `SELECT ${COLUMNS} FROM patients p WHERE p.practice_id = $1 AND p.id = ANY($2::uuid[]) ORDER BY ${ORDER_BY[options.sort]}`, params: [practiceId, []] };
  }
  params.push(options.limit, (options.page - 1) * options.limit);
  return {
    sql: `SELECT ${totalColumn(options)} AS total, ${COLUMNS}
            FROM patients p WHERE ${where}
           ORDER BY ${ORDER_BY[options.sort]}
           LIMIT $${params.length - 1} OFFSET $${params.length}`,
    params,
  };
}

/**
 * A search's candidates, ids only: the rows of the practice holding every term of the query.
 * Run on the system path (statementAsSystem): under row-level security PostgreSQL may not use an
 * index for an operator that isn't leakproof, and array containment (@>) isn't, so as medspa_app
 * this is a scan of every row (measured 200 ms at 100,000 patients against 10 ms). It reads no PHI,
 * filters on the practice itself, and the terms are HMACs under the practice's own key, which no
 * other practice's row holds; the rows themselves are then read in the practice's scope
 * (listPatientsStatement with these ids), where RLS applies as everywhere.
 */
export function searchCandidatesStatement(keys: PracticeKeys, practiceId: string, options: PatientListOptions): { sql: string; params: unknown[] } {
  const params: unknown[] = [practiceId];
  const where = listFilter(options, params, searchOf(keys, options));
  return { sql: `SELECT p.id FROM patients p WHERE ${where}`, params };
}

/** The candidates' ids into the page statement of a search. */
export function withCandidates(statement: { sql: string; params: unknown[] }, ids: string[]): { sql: string; params: unknown[] } {
  return { sql: statement.sql, params: [statement.params[0], ids] };
}

/** The total alone, for a page past the end of an unsearched list (no rows to read it from). */
export function listPatientsTotalStatement(practiceId: string, options: PatientListOptions): { sql: string; params: unknown[] } {
  // The total is the practice's counter, which takes the practice id alone (the status picks the
  // column): a bind with more values than the statement has is refused.
  return { sql: `SELECT ${totalColumn(options)} AS total`, params: [practiceId] };
}

export function listPatientsResult(
  keys: PracticeKeys,
  options: PatientListOptions,
  rows: Array<PatientRow & { total?: number }>,
): { records: PatientRecord[]; total: number | null } {
  const search = searchOf(keys, options);
  if (search === null) return { records: rows.map((row) => toRecord(keys, row)), total: rows[0] === undefined ? null : Number(rows[0].total) };
  const matching: PatientRecord[] = [];
  for (const row of rows) {
    const record = toRecord(keys, row);
    if (matchesSearch(record, search)) matching.push(record);
  }
  const offset = (options.page - 1) * options.limit;
  return { records: matching.slice(offset, offset + options.limit), total: matching.length };
}

export interface ImportCandidate extends DuplicateKey {
  /** Index of the row in the request. */
  row: number;
}

/**
 * Rows of an import that duplicate a live patient already stored, in two equi-joins on the blind
 * indexes (each a hash join over the practice's patients, however many rows the import has).
 */
export async function findImportDuplicates(
  tx: Queryable,
  keys: PracticeKeys,
  practiceId: string,
  candidates: ImportCandidate[],
): Promise<Map<number, Duplicate>> {
  const hex = (value: Buffer | null) => (value === null ? null : value.toString('hex'));
  const payload = JSON.stringify(
    candidates.map((c) => ({ row: c.row, email_bidx: hex(emailIndex(keys, c.email)), name_dob_bidx: hex(nameDobIndex(keys, c)) })),
  );
  const { rows } = await tx.query<{ row: number; id: string; rule: Duplicate['rule'] }>(
    `WITH r AS (
       SELECT r.row, decode(r.email_bidx, 'hex') AS email_bidx, decode(r.name_dob_bidx, 'hex') AS name_dob_bidx
         FROM jsonb_to_recordset($2::jsonb) AS r(row int, email_bidx text, name_dob_bidx text)
     )
     SELECT r.row, p.id, 'email' AS rule
       FROM r JOIN patients p ON p.practice_id = $1 AND p.deleted_at IS NULL AND p.email_bidx = r.email_bidx
     UNION ALL
     SELECT r.row, p.id, 'nameAndDateOfBirth' AS rule
       FROM r JOIN patients p ON p.practice_id = $1 AND p.deleted_at IS NULL AND p.name_dob_bidx = r.name_dob_bidx`,
    [practiceId, payload],
  );
  const found = new Map<number, Duplicate>();
  for (const row of rows) {
    // An email match is the more specific one to report.
    if (!found.has(row.row) || row.rule === 'email') found.set(row.row, { id: row.id, rule: row.rule });
  }
  return found;
}

export interface ImportRow {
  id: string;
  fields: Pick<PatientFields, 'firstName' | 'lastName'> & Partial<PatientFields>;
}

/**
 * Order keys for many new patients at once (an import, the first encryption of stored rows): the
 * practice's present order is read and opened once, the newcomers sorted and merged into it, and
 * each run of newcomers between two neighbours spread over the gap between their keys.
 */
export async function orderKeysForMany(
  tx: Queryable,
  keys: PracticeKeys,
  practiceId: string,
  newcomers: Array<{ id: string; names: Pick<PatientPhi, 'firstName' | 'lastName'> }>,
): Promise<Map<string, string>> {
  await lockOrder(tx, practiceId);
  const { rows } = await tx.query<{ id: string; phi: string; phi_key: number; name_order: string }>(
    `SELECT p.id, p.phi, p.phi_key, p.name_order FROM patients p
      WHERE p.practice_id = $1 AND p.name_order IS NOT NULL ORDER BY p.name_order, p.id`,
    [practiceId],
  );
  const existing = rows.map((row) => ({ key: row.name_order, names: openPatient(keys, row) }));
  const sorted = [...newcomers].sort((a, b) => compareNames(a.names, b.names) || (a.id < b.id ? -1 : 1));
  const assigned = new Map<string, string>();
  let next = 0;
  let lowKey = '';
  for (let at = 0; at <= existing.length; at++) {
    const neighbour = existing[at];
    const run: string[] = [];
    // Newcomers sorting before this neighbour (ties go after the stored patients of the same name).
    while (next < sorted.length && (neighbour === undefined || compareNames(sorted[next]!.names, neighbour.names) < 0)) run.push(sorted[next++]!.id);
    const keysInGap = orderKeysBetween(lowKey, neighbour?.key ?? null, run.length);
    run.forEach((id, i) => assigned.set(id, keysInGap[i]!));
    if (neighbour !== undefined) lowKey = neighbour.key;
  }
  return assigned;
}

/**
 * Inserts the rows in one statement. A row that a concurrent request made a duplicate of since
 * the check above is skipped (ON CONFLICT DO NOTHING), and is missing from the returned ids.
 */
export async function insertImportRows(tx: Queryable, keys: PracticeKeys, practiceId: string, rows: ImportRow[]): Promise<Set<string>> {
  const order = await orderKeysForMany(tx, keys, practiceId, rows.map(({ id, fields }) => ({ id, names: fields })));
  const payload = JSON.stringify(
    rows.map(({ id, fields: f }) => {
      return {
        id,
        ...sealedJson(sealPatient(keys, id, phiOf(f))),
        name_order: order.get(id),
        gender: f.gender ?? null,
        status: f.status ?? null,
        external_ids: f.externalIds ?? null,
      };
    }),
  );
  const { rows: inserted } = await tx.query<{ id: string }>(
    `INSERT INTO patients (id, practice_id, phi, phi_key, email_bidx, phone_bidx, name_dob_bidx, search_terms, name_order,
                           gender, status, external_ids)
     SELECT r.id, $1, r.phi, r.phi_key, decode(r.email_bidx, 'hex'), decode(r.phone_bidx, 'hex'), decode(r.name_dob_bidx, 'hex'),
            r.search_terms::bigint[], r.name_order, r.gender, coalesce(r.status, 'ACTIVE'), coalesce(r.external_ids, '{}')
       FROM jsonb_to_recordset($2::jsonb) AS r(id uuid, phi text, phi_key int, email_bidx text, phone_bidx text, name_dob_bidx text,
            search_terms text, name_order text, gender text, status text, external_ids jsonb)
     ON CONFLICT DO NOTHING
     RETURNING id`,
    [practiceId, payload],
  );
  return new Set(inserted.map((row) => row.id));
}
