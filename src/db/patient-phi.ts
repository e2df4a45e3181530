// The stored form of a patient's PHI: the one path every feature reading patients goes through
// (patients, reconciliation), so no query reads or writes a patient's name, date of birth, email,
// phone, address or notes except as the sealed document and its blind indexes (migration 015).
//
// What each blind index lets someone holding the database (but not the keys) learn; it is keyed
// per practice, so nothing links across practices, and no index can be computed without the key:
//   email_bidx, phone_bidx, name_dob_bidx: which patients of a practice share an email, a phone
//     number, or a name with a date of birth (what the duplicate rules need; the unique indexes
//     already allow at most one live patient per value).
//   search_terms: which patients share a lower-cased trigram of "first last" / "last first" /
//     email, a digit trigram of the phone, or a 1-2 character word prefix: enough for frequency
//     analysis of common trigrams across a practice's patients, not enough to read a name.
//   name_order: each patient's alphabetical rank by last then first name within the practice
//     (fractional keys assigned between neighbours; the key's length hints at insertion history).
import type { PracticeKeys } from './field-encryption.js';

export const PATIENT_TABLE = 'patients';

export interface PatientAddress {
  line1?: string;
  line2?: string;
  city?: string;
  state?: string;
  postalCode?: string;
  country?: string;
}

/** The plaintext that is sealed: short keys keep every row's ciphertext small. */
export interface PatientPhi {
  firstName: string;
  lastName: string;
  dateOfBirth: string | null;
  email: string | null;
  phoneNumber: string | null;
  address: PatientAddress | null;
  notes: string | null;
}

interface SealedDocument {
  f: string;
  l: string;
  d: string | null;
  e: string | null;
  p: string | null;
  a: PatientAddress | null;
  n: string | null;
}

/** The columns a patient's PHI is stored in. */
export interface SealedPatientColumns {
  phi: string;
  phi_key: number;
  email_bidx: Buffer | null;
  phone_bidx: Buffer | null;
  name_dob_bidx: Buffer | null;
  /** Postgres array literal of the HMAC'ed terms, for a ::bigint[] parameter. */
  search_terms: string;
}

/** The columns that hold no plaintext: what every patient SELECT reads. */
export const SEALED_COLUMNS = ['phi', 'phi_key', 'email_bidx', 'phone_bidx', 'name_dob_bidx', 'search_terms'] as const;

/** Lower-cased name + date of birth: the second duplicate rule (model.ts nameAndBirthKey, same text). */
function nameAndBirth(phi: Pick<PatientPhi, 'firstName' | 'lastName' | 'dateOfBirth'>): string | null {
  if (phi.dateOfBirth === null) return null;
  return `${phi.firstName.toLowerCase()}\u0000${phi.lastName.toLowerCase()}\u0000${phi.dateOfBirth}`;
}

export function emailIndex(keys: PracticeKeys, email: string | null): Buffer | null {
  return email === null ? null : keys.blindIndex('email', email);
}

export function nameDobIndex(keys: PracticeKeys, phi: Pick<PatientPhi, 'firstName' | 'lastName' | 'dateOfBirth'>): Buffer | null {
  const text = nameAndBirth(phi);
  return text === null ? null : keys.blindIndex('name_dob', text);
}

export function phoneIndex(keys: PracticeKeys, phone: string | null): Buffer | null {
  return phone === null ? null : keys.blindIndex('phone', phone);
}

const TEXT_TERM = 't';
const DIGIT_TERM = 'd';
const PREFIX_TERM = 'p';
/** Queries shorter than this match word prefixes; longer ones any substring (trigrams). */
const TRIGRAM = 3;

function trigrams(text: string, into: Set<string>): void {
  for (let i = 0; i + TRIGRAM <= text.length; i++) into.add(text.slice(i, i + TRIGRAM));
}

/** The texts a search looks in, lower-cased: what the list searched before encryption. */
function searchTexts(phi: PatientPhi): string[] {
  const first = phi.firstName.toLowerCase();
  const last = phi.lastName.toLowerCase();
  const texts = [`${first} ${last}`, `${last} ${first}`];
  if (phi.email !== null) texts.push(phi.email);
  return texts;
}

/** Words whose 1-2 character prefixes short queries match: name parts and the email's local part and domain. */
function prefixWords(phi: PatientPhi): string[] {
  const words = `${phi.firstName} ${phi.lastName}`.toLowerCase().split(/[\s'-]+/);
  if (phi.email !== null) words.push(...phi.email.split(/[@.]/));
  return words.filter((word) => word.length > 0);
}

function rowTerms(keys: PracticeKeys, phi: PatientPhi): string[] {
  const text = new Set<string>();
  for (const value of searchTexts(phi)) trigrams(value, text);
  const prefixes = new Set<string>();
  for (const word of prefixWords(phi)) {
    prefixes.add(word.slice(0, 1));
    if (word.length >= 2) prefixes.add(word.slice(0, 2));
  }
  const digits = new Set<string>();
  if (phi.phoneNumber !== null) trigrams(phi.phoneNumber.replace(/\D/g, ''), digits);
  return [
    ...[...text].map((t) => keys.term(TEXT_TERM, t)),
    ...[...prefixes].map((t) => keys.term(PREFIX_TERM, t)),
    ...[...digits].map((t) => keys.term(DIGIT_TERM, t)),
  ];
}

const arrayLiteral = (terms: readonly string[]) => `{${terms.join(',')}}`;

export function sealPatient(keys: PracticeKeys, id: string, phi: PatientPhi): SealedPatientColumns {
  const document: SealedDocument = {
    f: phi.firstName,
    l: phi.lastName,
    d: phi.dateOfBirth,
    e: phi.email,
    p: phi.phoneNumber,
    a: phi.address,
    n: phi.notes,
  };
  const { sealed, version } = keys.seal(PATIENT_TABLE, id, document);
  return {
    phi: sealed,
    phi_key: version,
    email_bidx: emailIndex(keys, phi.email),
    phone_bidx: phoneIndex(keys, phi.phoneNumber),
    name_dob_bidx: nameDobIndex(keys, phi),
    search_terms: arrayLiteral(rowTerms(keys, phi)),
  };
}

/** The sealed columns as JSON values (bytea as hex) for a jsonb_to_recordset batch statement. */
export function sealedJson(sealed: SealedPatientColumns) {
  const hex = (value: Buffer | null) => (value === null ? null : value.toString('hex'));
  return {
    phi: sealed.phi,
    phi_key: sealed.phi_key,
    email_bidx: hex(sealed.email_bidx),
    phone_bidx: hex(sealed.phone_bidx),
    name_dob_bidx: hex(sealed.name_dob_bidx),
    search_terms: sealed.search_terms,
  };
}

/** Opens a row's PHI; throws FieldEncryptionError if it was altered or moved from another row. */
export function openPatient(keys: PracticeKeys, row: { id: string; phi: string; phi_key: number }): PatientPhi {
  const d = keys.open<SealedDocument>(PATIENT_TABLE, row.id, row.phi_key, row.phi);
  return { firstName: d.f, lastName: d.l, dateOfBirth: d.d, email: d.e, phoneNumber: d.p, address: d.a, notes: d.n };
}

/**
 * Non-overlapping trigrams covering the query, plus its last trigram: every character is in one
 * of them, so they select the same rows as all trigrams up to a few more candidates (which the
 * verification drops), at a third of the GIN lookups; common trigrams have the longest lists.
 */
function coveringTrigrams(text: string): string[] {
  const picked = new Set<string>();
  for (let i = 0; i + TRIGRAM <= text.length; i += TRIGRAM) picked.add(text.slice(i, i + TRIGRAM));
  picked.add(text.slice(-TRIGRAM));
  return [...picked];
}

export interface SearchQuery {
  /** Lower-cased, trimmed query. */
  text: string;
  digits: string;
  /** Term sets, any of which a candidate row must contain all of (as ::bigint[] literals). */
  termSets: string[];
}

/**
 * The search the list offers ("part of a name, email or phone"): 3 characters or more match any
 * substring of "first last", "last first" or the email, through trigram terms; 1-2 characters
 * match the start of a name word or email part; 3 digits or more also match the phone's digits.
 */
export function searchQuery(keys: PracticeKeys, q: string): SearchQuery {
  const text = q.trim().toLowerCase();
  const digits = q.replace(/\D/g, '');
  const termSets: string[] = [];
  if (text.length >= TRIGRAM) {
    termSets.push(arrayLiteral(coveringTrigrams(text).map((t) => keys.term(TEXT_TERM, t))));
  } else if (text.length > 0) {
    termSets.push(arrayLiteral([keys.term(PREFIX_TERM, text)]));
  }
  if (digits.length >= TRIGRAM) termSets.push(arrayLiteral(coveringTrigrams(digits).map((t) => keys.term(DIGIT_TERM, t))));
  return { text, digits, termSets };
}

/** Whether an opened candidate really matches (terms only narrow: trigrams can all occur apart). */
export function matchesSearch(phi: PatientPhi, query: SearchQuery): boolean {
  if (query.text.length >= TRIGRAM) {
    if (searchTexts(phi).some((text) => text.includes(query.text))) return true;
  } else if (query.text.length > 0) {
    if (prefixWords(phi).some((word) => word.startsWith(query.text))) return true;
  }
  return query.digits.length >= TRIGRAM && phi.phoneNumber !== null && phi.phoneNumber.includes(query.digits);
}

/** The list's name order: lower-cased last name, then first name (code-unit order, as before). */
export function compareNames(a: Pick<PatientPhi, 'firstName' | 'lastName'>, b: Pick<PatientPhi, 'firstName' | 'lastName'>): number {
  const [al, bl] = [a.lastName.toLowerCase(), b.lastName.toLowerCase()];
  if (al !== bl) return al < bl ? -1 : 1;
  const [af, bf] = [a.firstName.toLowerCase(), b.firstName.toLowerCase()];
  return af === bf ? 0 : af < bf ? -1 : 1;
}

// Fractional order keys: strings over 62 digits in ASCII order, compared bytewise ("C"), never
// ending in the lowest digit, so there is always room for a key between two others.
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BASE = DIGITS.length;

/** A key strictly between `a` and `b` ('' and null: the open ends). */
export function orderKeyBetween(a: string, b: string | null): string {
  if (b !== null && !(a < b)) throw new RangeError(`order keys out of order: ${a} >= ${b}`);
  if (b !== null) {
    let n = 0;
    while ((a[n] ?? '0') === b[n]) n++;
    if (n > 0) return b.slice(0, n) + orderKeyBetween(a.slice(n), b.slice(n));
  }
  const low = a.length > 0 ? DIGITS.indexOf(a[0]!) : 0;
  const high = b !== null ? DIGITS.indexOf(b[0]!) : BASE;
  if (high - low > 1) return DIGITS[Math.round((low + high) / 2)]!;
  if (b !== null && b.length > 1) return b.slice(0, 1);
  return DIGITS[low]! + orderKeyBetween(a.slice(1), null);
}

/** `count` ascending keys strictly between `a` and `b`, spread so that later inserts find room. */
export function orderKeysBetween(a: string, b: string | null, count: number): string[] {
  if (count === 0) return [];
  const middle = orderKeyBetween(a, b);
  const left = Math.floor((count - 1) / 2);
  return [...orderKeysBetween(a, middle, left), middle, ...orderKeysBetween(middle, b, count - 1 - left)];
}
