// Bulk import (how a clinic moves in from another system): up to 10,000 PatientCreate rows in one
// request, each validated and normalised on its own, duplicates looked for within the file and
// against the practice's live patients, then inserted in one statement.
import { randomUUID } from 'node:crypto';
import type { ErrorDetail } from '../http/errors.js';
import type { Queryable } from '../db/database.js';
import type { PracticeKeys } from '../db/field-encryption.js';
import { nameAndBirthKey, normaliseWrite, type PatientFields, type PatientShapes } from './model.js';
import type { ImportMode } from './schema.v1.js';
import { findImportDuplicates, insertImportRows, type ImportRow } from './store.js';

export type RowOutcome =
  | { row: number; status: 'created'; id: string }
  | { row: number; status: 'failed'; errors: ErrorDetail[]; existingPatientId?: string }
  /** Valid, but not created because the atomic import failed elsewhere. */
  | { row: number; status: 'skipped' };

/** Checks one raw row against the PatientCreate schema; returns its problems with row-prefixed fields. */
export type RowSchemaCheck = (row: unknown, index: number) => ErrorDetail[];

/** Maps a row that passed the check to the model: the API version's `fromWrite`. */
export type RowMapping = PatientShapes['fromWrite'];

interface PreparedRow {
  row: number;
  id: string;
  fields: ImportRow['fields'];
}

/** Schema check and normalisation of every row, and duplicates within the file itself. */
export function prepareRows(rows: unknown[], checkSchema: RowSchemaCheck, fromWrite: RowMapping): { prepared: PreparedRow[]; failed: RowOutcome[] } {
  const prepared: PreparedRow[] = [];
  const failed: RowOutcome[] = [];
  const firstRowByEmail = new Map<string, number>();
  const firstRowByNameAndBirth = new Map<string, number>();
  rows.forEach((raw, row) => {
    const prefix = `patients.${row}.`;
    const schemaErrors = checkSchema(raw, row);
    if (schemaErrors.length > 0) {
      failed.push({ row, status: 'failed', errors: schemaErrors });
      return;
    }
    const { fields, errors } = normaliseWrite(fromWrite(raw, prefix), prefix);
    if (errors.length > 0) {
      failed.push({ row, status: 'failed', errors });
      return;
    }
    const complete = fields as Pick<PatientFields, 'firstName' | 'lastName'> & Partial<PatientFields>;
    const key = { email: complete.email ?? null, firstName: complete.firstName, lastName: complete.lastName, dateOfBirth: complete.dateOfBirth ?? null };
    const sameEmail = key.email === null ? undefined : firstRowByEmail.get(key.email);
    const birthKey = nameAndBirthKey(key);
    const sameNameAndBirth = birthKey === null ? undefined : firstRowByNameAndBirth.get(birthKey);
    if (sameEmail !== undefined || sameNameAndBirth !== undefined) {
      const earlier = sameEmail ?? sameNameAndBirth!;
      const field = sameEmail !== undefined ? 'email' : 'dateOfBirth';
      failed.push({ row, status: 'failed', errors: [{ field: `${prefix}${field}`, message: `duplicates row ${earlier} of this import` }] });
      return;
    }
    if (key.email !== null) firstRowByEmail.set(key.email, row);
    if (birthKey !== null) firstRowByNameAndBirth.set(birthKey, row);
    prepared.push({ row, id: randomUUID(), fields: complete });
  });
  return { prepared, failed };
}

/** Rows that duplicate stored patients become failures naming the existing patient. */
async function splitStoredDuplicates(
  tx: Queryable,
  keys: PracticeKeys,
  practiceId: string,
  prepared: PreparedRow[],
): Promise<{ fresh: PreparedRow[]; failed: RowOutcome[] }> {
  const duplicates = await findImportDuplicates(
    tx,
    keys,
    practiceId,
    prepared.map(({ row, fields }) => ({
      row,
      email: fields.email ?? null,
      firstName: fields.firstName,
      lastName: fields.lastName,
      dateOfBirth: fields.dateOfBirth ?? null,
    })),
  );
  const fresh: PreparedRow[] = [];
  const failed: RowOutcome[] = [];
  for (const row of prepared) {
    const duplicate = duplicates.get(row.row);
    if (duplicate === undefined) {
      fresh.push(row);
      continue;
    }
    const field = duplicate.rule === 'email' ? 'email' : 'dateOfBirth';
    const what = duplicate.rule === 'email' ? 'this email' : 'this name and date of birth';
    failed.push({
      row: row.row,
      status: 'failed',
      existingPatientId: duplicate.id,
      errors: [{ field: `patients.${row.row}.${field}`, message: `patient ${duplicate.id} already has ${what}` }],
    });
  }
  return { fresh, failed };
}

export interface ImportOutcome {
  /** True when rows were written (atomic: all of them; partial: those reported created). */
  committed: boolean;
  results: RowOutcome[];
}

/**
 * Runs inside the caller's practice-scoped transaction. In atomic mode any failed row means
 * nothing is inserted (committed false; the caller still commits its audit event).
 */
export async function importPatients(
  tx: Queryable,
  keys: PracticeKeys,
  practiceId: string,
  rows: unknown[],
  mode: ImportMode,
  checkSchema: RowSchemaCheck,
  fromWrite: RowMapping,
): Promise<ImportOutcome> {
  const { prepared, failed: invalid } = prepareRows(rows, checkSchema, fromWrite);
  const { fresh, failed: duplicates } = await splitStoredDuplicates(tx, keys, practiceId, prepared);
  const failed = [...invalid, ...duplicates];
  const sortByRow = (outcomes: RowOutcome[]) => outcomes.sort((a, b) => a.row - b.row);

  if (mode === 'atomic' && failed.length > 0) {
    return { committed: false, results: sortByRow([...failed, ...fresh.map(({ row }) => ({ row, status: 'skipped' as const }))]) };
  }
  const inserted = fresh.length === 0 ? new Set<string>() : await insertImportRows(tx, keys, practiceId, fresh);
  const created: RowOutcome[] = [];
  for (const row of fresh) {
    if (inserted.has(row.id)) created.push({ row: row.row, status: 'created', id: row.id });
    else {
      failed.push({
        row: row.row,
        status: 'failed',
        errors: [{ field: `patients.${row.row}`, message: 'a patient with this email or name and date of birth was created meanwhile' }],
      });
    }
  }
  if (mode === 'atomic' && created.length < fresh.length) {
    // A concurrent request won a race for some row: an atomic import must then write nothing.
    return { committed: false, results: sortByRow([...failed, ...created.map(({ row }) => ({ row, status: 'skipped' as const }))]) };
  }
  return { committed: true, results: sortByRow([...created, ...failed]) };
}
