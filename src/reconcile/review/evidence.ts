// Field-by-field evidence a reviewer can read ("DOB equal, surname typo 1 edit, phone same last 7
// digits"), for a row of the file against one practice patient. Built on the engine's own
// preparation (engine/prepare.ts), so both sides are normalised exactly as the engine saw them.
import { distance } from 'fastest-levenshtein';
import { compileFieldMapping, recogniseRecord } from '../engine/fields.js';
import type { PracticePatient } from '../engine/engine.js';
import { practiceRecord } from '../engine/people.js';
import { preparePerson, type PreparedPerson } from '../engine/prepare.js';

const edits = (n: number) => `${n} edit${n === 1 ? '' : 's'}`;

function nameEvidence(label: string, incoming: PreparedPerson['surname'], practice: PreparedPerson['surname'], alternatives: PreparedPerson['otherSurnames'] = []): string | null {
  if (incoming === null || practice === null) return incoming === null ? null : `${label} missing on the patient`;
  const d = distance(incoming.joined, practice.joined);
  if (d === 0) return `${label} equal`;
  if (alternatives.some((other) => other.joined === incoming.joined)) return `${label} matches a previous ${label}`;
  if (incoming.tokens.some((token) => practice.tokens.includes(token))) return `${label} shares a part (${incoming.tokens.length} vs ${practice.tokens.length} parts)`;
  if (d <= 2) return `${label} typo ${edits(d)}`;
  return `${label} differs`;
}

function givenEvidence(incoming: PreparedPerson, practice: PreparedPerson): string | null {
  const text = nameEvidence('first name', incoming.given, practice.given);
  if (text === 'first name differs' && incoming.givenGroups.some((group) => practice.givenGroups.includes(group))) return 'first name is a nickname of the other';
  return text;
}

function dobEvidence(incoming: string[], practice: string[]): string | null {
  if (incoming.length === 0) return null;
  if (practice.length === 0) return 'DOB missing on the patient';
  if (incoming.some((reading) => practice.includes(reading))) return 'DOB equal';
  const [a, b] = [incoming[0]!.replace(/-/g, ''), practice[0]!.replace(/-/g, '')];
  const [ay, am, ad] = [a.slice(0, 4), a.slice(4, 6), a.slice(6, 8)];
  const [by, bm, bd] = [b.slice(0, 4), b.slice(4, 6), b.slice(6, 8)];
  if (ay === by && am === bd && ad === bm) return 'DOB day and month swapped';
  if (ay === by && am === bm) return 'DOB same month, other day';
  const differing = [...a].filter((char, i) => char !== b[i]).length;
  if (differing === 1) return 'DOB 1 digit differs';
  return 'DOB differs';
}

function phoneEvidence(incoming: PreparedPerson['phones'], practice: PreparedPerson['phones']): string | null {
  if (incoming.length === 0) return null;
  if (practice.length === 0) return 'phone missing on the patient';
  if (incoming.some((p) => p.e164 !== null && practice.some((q) => q.e164 === p.e164))) return 'phone equal';
  if (incoming.some((p) => practice.some((q) => q.last7 === p.last7))) return 'phone same last 7 digits';
  return 'phone differs';
}

function emailEvidence(incoming: PreparedPerson['emails'], practice: PreparedPerson['emails']): string | null {
  if (incoming.length === 0) return null;
  if (practice.length === 0) return 'email missing on the patient';
  if (incoming.some((e) => practice.some((f) => f.canonical === e.canonical))) return 'email equal';
  if (incoming.some((e) => practice.some((f) => f.local === e.local))) return 'email same name, other domain';
  return 'email differs';
}

function addressEvidence(incoming: PreparedPerson, practice: PreparedPerson): string | null {
  const a = incoming.address as { postcode?: string | null } | null;
  const b = practice.address as { postcode?: string | null } | null;
  if (!a?.postcode || !b?.postcode) return null;
  return a.postcode === b.postcode ? 'postal code equal' : 'postal code differs';
}

/** The evidence for one pair, strongest identifiers first. */
export function personEvidence(incoming: PreparedPerson, practice: PreparedPerson): string[] {
  const lines: (string | null)[] = [];
  if (incoming.memberIds.some((id) => practice.memberIds.includes(id))) lines.push('member id already linked to this patient');
  lines.push(
    dobEvidence(incoming.dob, practice.dob),
    nameEvidence('surname', incoming.surname, practice.surname, practice.otherSurnames),
    givenEvidence(incoming, practice),
    phoneEvidence(incoming.phones, practice.phones),
    emailEvidence(incoming.emails, practice.emails),
    addressEvidence(incoming, practice),
  );
  return lines.filter((line): line is string => line !== null);
}

/** Prepares rows and patients once, then describes any pair of them. */
export class EvidenceWriter {
  private readonly mapping;
  private readonly patients = new Map<string, PreparedPerson>();

  constructor(patients: readonly PracticePatient[], fieldMapping: Record<string, string> | undefined) {
    this.mapping = compileFieldMapping(fieldMapping);
    for (const patient of patients) this.patients.set(patient.id, preparePerson(practiceRecord(patient)));
  }

  prepareRow(row: unknown): PreparedPerson | null {
    const record = recogniseRecord(row, this.mapping);
    return record === null ? null : preparePerson(record);
  }

  describe(row: PreparedPerson | null, patientId: string): string[] {
    const patient = this.patients.get(patientId);
    if (row === null || patient === undefined) return [];
    return personEvidence(row, patient);
  }
}

/** For matches the engine scored without a person on both sides (appointments): its field scores in words. */
export function scoreEvidence(fieldScores: Record<string, number>): string[] {
  return Object.entries(fieldScores).map(([field, score]) =>
    `${field} ${score >= 0.99 ? 'equal' : score >= 0.85 ? 'close' : score >= 0.5 ? 'partly similar' : 'differs'}`,
  );
}
