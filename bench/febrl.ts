// FEBRL development data as linkage splits: each file's "-org" rows are the practice's patients,
// its "-dup-N" rows are an incoming export (raw FEBRL keys, so key recognition is exercised),
// and rec-X-dup-N truly matches rec-X-org. soc_sec_id is never used: a clinic has no such key.
// Reused by the HTTP benchmark: import { loadFebrlSplit } from './febrl.js'.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PracticePatient } from '../src/reconcile/engine/engine.js';

export const FEBRL_DIR = fileURLToPath(new URL('../../shared/data/febrl-dev/', import.meta.url));
export const FEBRL_SPLITS = ['dataset1', 'dataset2', 'dataset3'] as const;
export type FebrlSplitName = (typeof FEBRL_SPLITS)[number];

/** The FEBRL columns copied into incoming rows under their raw names (never soc_sec_id). */
export const FEBRL_INCOMING_KEYS = [
  'given_name', 'surname', 'street_number', 'address_1', 'address_2', 'suburb', 'postcode', 'state', 'date_of_birth',
] as const;

export interface LinkageSplit {
  name: string;
  practice: PracticePatient[];
  incoming: Record<string, string>[];
  /** For each incoming row, the id of the practice patient it truly matches (null: no match). */
  truth: (string | null)[];
}

/** Parses a FEBRL CSV (no quoted fields; values have a leading space). */
export function parseFebrlCsv(text: string): Record<string, string>[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const header = (lines[0] ?? '').split(',').map((name) => name.trim());
  return lines.slice(1).map((line) => {
    const values = line.split(',');
    const row: Record<string, string> = {};
    header.forEach((name, i) => { row[name] = (values[i] ?? '').trim(); });
    return row;
  });
}

function isoDate(compact: string): string | null {
  return /^\d{8}$/.test(compact) ? `${compact.slice(0, 4)}-${compact.slice(4, 6)}-${compact.slice(6, 8)}` : null;
}

/** A FEBRL original as the practice would hold it (street number folded into line 1). */
export function febrlPracticePatient(row: Record<string, string>): PracticePatient {
  const value = (key: string): string | null => (row[key] ?? '') === '' ? null : (row[key] as string);
  const line1 = [value('street_number'), value('address_1')].filter((part) => part !== null).join(' ');
  return {
    id: row.rec_id ?? '',
    firstName: row.given_name ?? '',
    lastName: row.surname ?? '',
    dateOfBirth: isoDate(row.date_of_birth ?? ''),
    email: null,
    phoneNumber: null,
    address: {
      line1: line1 === '' ? null : line1,
      line2: value('address_2'),
      city: value('suburb'),
      state: value('state'),
      postalCode: value('postcode'),
      country: 'AU',
    },
  };
}

function clusterOf(recId: string): string | null {
  return /^rec-(\d+)-/.exec(recId)?.[1] ?? null;
}

export function buildFebrlSplit(name: string, rows: Record<string, string>[]): LinkageSplit {
  const practice = rows.filter((row) => (row.rec_id ?? '').endsWith('-org')).map(febrlPracticePatient);
  const practiceIdByCluster = new Map(practice.map((patient) => [clusterOf(patient.id), patient.id]));
  const duplicates = rows.filter((row) => (row.rec_id ?? '').includes('-dup-'));
  const incoming = duplicates.map((row) => {
    const record: Record<string, string> = {};
    for (const key of FEBRL_INCOMING_KEYS) record[key] = row[key] ?? '';
    return record;
  });
  const truth = duplicates.map((row) => practiceIdByCluster.get(clusterOf(row.rec_id ?? '')) ?? null);
  return { name, practice, incoming, truth };
}

export function loadFebrlSplit(name: FebrlSplitName, directory: string = FEBRL_DIR): LinkageSplit {
  const text = readFileSync(`${directory}${name}.csv`, 'utf8');
  return buildFebrlSplit(name, parseFebrlCsv(text));
}
