// The stored patient model, and the pure rules that turn what a client sent into what is stored.
// Every API version (schema.v1.ts, schema.v2.ts) maps to and from these types, so the
// normalisation and the duplicate rules are written once.
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';
import type { TSchema } from 'typebox';
import type { ErrorDetail } from '../http/errors.js';

export const PATIENT_STATUSES = ['ACTIVE', 'VIP', 'INACTIVE'] as const;
export type PatientStatus = (typeof PATIENT_STATUSES)[number];

export interface Address {
  line1?: string;
  line2?: string;
  city?: string;
  state?: string;
  postalCode?: string;
  /** ISO 3166-1 alpha-2, upper case. */
  country?: string;
}

export interface PatientRecord {
  id: string;
  firstName: string;
  lastName: string;
  /** Calendar date "YYYY-MM-DD": a date of birth has no time zone. */
  dateOfBirth: string | null;
  /** Lower case. */
  email: string | null;
  /** E.164, e.g. "+12125550123". */
  phoneNumber: string | null;
  gender: string | null;
  address: Address | null;
  status: PatientStatus;
  notes: string | null;
  /** Identifiers in other systems (loyalty programs, a previous EHR), by system name. */
  externalIds: Record<string, string>;
  /** ISO 8601 in UTC with milliseconds, e.g. "2026-03-08T15:04:05.123Z". */
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
}

/** What a create or update may set: the record without the fields the server owns. */
export type PatientFields = Omit<PatientRecord, 'id' | 'createdAt' | 'updatedAt' | 'deletedAt'>;

/** Input after schema validation (types and lengths checked), before normalisation. */
export type PatientInput = {
  [K in keyof PatientFields]?: PatientFields[K] | null;
};

/** Numbers written without a country code are read as this country's unless the address says otherwise. */
export const DEFAULT_PHONE_COUNTRY: CountryCode = 'US';
export const OLDEST_DATE_OF_BIRTH = '1900-01-01';

const HAS_LETTER = /\p{L}/u;

/** NFC (so "é" typed two ways is one name), trimmed, inner runs of spaces collapsed. */
export function normaliseName(value: string): string {
  return value.normalize('NFC').trim().replace(/ {2,}/g, ' ');
}

// The schema already refused anything outside letters, marks, apostrophes, hyphens and spaces;
// what is left to refuse is a name made only of punctuation.
function nameProblem(value: string): string | null {
  if (value.length === 0) return 'must not be empty';
  if (!HAS_LETTER.test(value)) return 'must contain at least one letter';
  return null;
}

// Stricter than the schema's "email" format on the domain: a clinic writes to real mailboxes,
// so the domain needs a dot, and the local part follows the dot-atom rules of RFC 5322.
const EMAIL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

export function normaliseEmail(value: string): { value: string } | { problem: string } {
  const email = value.trim().toLowerCase();
  const at = email.lastIndexOf('@');
  if (!EMAIL.test(email) || at > 64 || email.length > 254) return { problem: 'must be a valid email address' };
  return { value: email };
}

export function normalisePhone(value: string, defaultCountry: CountryCode): { value: string } | { problem: string } {
  const parsed = parsePhoneNumberFromString(value, defaultCountry);
  if (parsed === undefined || !parsed.isValid()) {
    return { problem: `must be a valid phone number (international with +, or national for ${defaultCountry})` };
  }
  // Dropping an extension silently would store a number that doesn't reach the patient.
  if (parsed.ext) return { problem: 'extensions are not supported; store them in notes' };
  return { value: parsed.number };
}

/** A real calendar date, not before 1900 and not in the future (with a day's grace for time zones). */
export function dateOfBirthProblem(value: string, now: Date = new Date()): string | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (match === null) return 'must be a date YYYY-MM-DD';
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    return 'must be a real calendar date';
  }
  const tomorrow = new Date(now.getTime() + 24 * 3600 * 1000).toISOString().slice(0, 10);
  if (value < OLDEST_DATE_OF_BIRTH || value > tomorrow) return `must be between ${OLDEST_DATE_OF_BIRTH} and today`;
  return null;
}

function trimmedOrNull(value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

const ADDRESS_KEYS = ['line1', 'line2', 'city', 'state', 'postalCode', 'country'] as const;

export function normaliseAddress(address: Address | null): Address | null {
  if (address === null) return null;
  const result: Address = {};
  for (const key of ADDRESS_KEYS) {
    const value = trimmedOrNull(address[key]);
    if (value !== null) result[key] = key === 'country' ? value.toUpperCase() : value;
  }
  return Object.keys(result).length === 0 ? null : result;
}

export function phoneCountryFor(address: Address | null | undefined): CountryCode {
  const country = address?.country?.trim().toUpperCase();
  return country && /^[A-Z]{2}$/.test(country) ? (country as CountryCode) : DEFAULT_PHONE_COUNTRY;
}

export interface Normalised {
  fields: Partial<PatientFields>;
  errors: ErrorDetail[];
}

/** The body's names for model fields a version calls differently (v2: phoneNumber sent as contact.phone). */
export type FieldNames = Partial<Record<keyof PatientFields, string>>;

/** A version's create or update body mapped to the model, before normalisation. */
export interface PatientWrite {
  input: PatientInput;
  /** So that a problem is reported under the name the client sent. */
  names: FieldNames;
  /** What the mapping itself refused (v2: contact.phone and phoneNumber that disagree). */
  errors: ErrorDetail[];
}

/**
 * What one API version's schema module gives the patient routes: its wire shapes and their
 * mapping to and from the stored model. The routes are written once and registered per version
 * with that version's module (app.ts); no handler asks which version it serves.
 */
export interface PatientShapes {
  Patient: TSchema;
  PatientList: TSchema;
  PatientCreate: TSchema;
  PatientUpdate: TSchema;
  toPatient(record: PatientRecord): unknown;
  /** `body` has passed the version's PatientCreate or PatientUpdate schema; `prefix` as in normalisePatient. */
  fromWrite(body: unknown, prefix?: string): PatientWrite;
}

/**
 * Normalises the fields present in `input` (absent ones stay absent, so PATCH can use it) and
 * collects one error per field that can't be accepted. `prefix` names where the input sits in
 * the request body ("patients.3." for an import row); `names` how the body called a field.
 */
export function normalisePatient(input: PatientInput, prefix = '', names: FieldNames = {}): Normalised {
  const fields: Partial<PatientFields> = {};
  const errors: ErrorDetail[] = [];
  const fail = (field: keyof PatientFields, message: string) => errors.push({ field: `${prefix}${names[field] ?? field}`, message });

  for (const key of ['firstName', 'lastName'] as const) {
    const raw = input[key];
    if (raw === undefined) continue;
    if (raw === null) {
      fail(key, 'is required');
      continue;
    }
    const name = normaliseName(raw);
    const problem = nameProblem(name);
    if (problem) fail(key, problem);
    else fields[key] = name;
  }
  if (input.email !== undefined) {
    if (input.email === null) fields.email = null;
    else {
      const email = normaliseEmail(input.email);
      if ('problem' in email) fail('email', email.problem);
      else fields.email = email.value;
    }
  }
  if (input.phoneNumber !== undefined) {
    // Like email: null means no number; a blank string is not a number (400), not a quiet null.
    if (input.phoneNumber === null) fields.phoneNumber = null;
    else {
      const phone = normalisePhone(input.phoneNumber.trim(), phoneCountryFor(input.address));
      if ('problem' in phone) fail('phoneNumber', phone.problem);
      else fields.phoneNumber = phone.value;
    }
  }
  if (input.dateOfBirth !== undefined) {
    const problem = input.dateOfBirth === null ? null : dateOfBirthProblem(input.dateOfBirth);
    if (problem) fail('dateOfBirth', problem);
    else fields.dateOfBirth = input.dateOfBirth;
  }
  if (input.address !== undefined) fields.address = normaliseAddress(input.address);
  if (input.gender !== undefined) fields.gender = trimmedOrNull(input.gender);
  if (input.notes !== undefined) fields.notes = trimmedOrNull(input.notes);
  if (input.status !== undefined && input.status !== null) fields.status = input.status;
  if (input.externalIds !== undefined) fields.externalIds = input.externalIds ?? {};
  return { fields, errors };
}

/** A version's mapped write body, normalised: the mapping's problems and the fields' in one list. */
export function normaliseWrite(write: PatientWrite, prefix = ''): Normalised {
  const { fields, errors } = normalisePatient(write.input, prefix, write.names);
  return { fields, errors: [...write.errors, ...errors] };
}

/** The fields the duplicate rules look at. */
export interface DuplicateKey {
  email: string | null;
  firstName: string;
  lastName: string;
  dateOfBirth: string | null;
}

/** Lower-cased name + date of birth, the second duplicate rule; null when there is no date of birth. */
export function nameAndBirthKey(key: DuplicateKey): string | null {
  if (key.dateOfBirth === null) return null;
  return `${key.firstName.toLowerCase()}\u0000${key.lastName.toLowerCase()}\u0000${key.dateOfBirth}`;
}
