// One record, practice or incoming, normalised once so each pair comparison is cheap.
import { doubleMetaphone } from 'double-metaphone';
import type { AddressValue, NameValue } from './compare.js';
import type { CanonicalRecord } from './fields.js';
import { nicknameGroups } from './nicknames.js';
import {
  addressTokens, nameTokens, normaliseEmail, normaliseGender, normaliseIdentifier, normalisePhone,
  normalisePostcode, normaliseState, parseDateParts, parseDateReadings, splitEmailCell, splitFullName, splitPhoneCell,
  type NormalisedEmail, type NormalisedPhone,
} from './normalise.js';
import { foldText } from './text.js';

export interface PreparedPerson {
  given: NameValue | null;
  surname: NameValue | null;
  /**
   * A whole name in one cell without a comma can be in either order: "Thi Lan Dang" (given names
   * first: given Thi Lan, surname Dang) or "Dang Thi Lan" (surname first). `given`/`surname` hold
   * the first reading, this the second; comparison takes whichever fits better.
   */
  otherReading: { given: NameValue | null; surname: NameValue | null } | null;
  /** Maiden or previous surnames, compared as alternatives to `surname`. */
  otherSurnames: NameValue[];
  dob: string[];
  emails: NormalisedEmail[];
  phones: NormalisedPhone[];
  gender: string | null;
  address: AddressValue;
  memberIds: string[];
  /** Nickname groups of the given-name tokens (blocking key: Liz and Elizabeth share one). */
  givenGroups: number[];
  /** True when the record has at least one field that can identify a person. */
  usable: boolean;
}

function nameValue(value: string | null): NameValue | null {
  const parts = nameTokens(value);
  if (parts.length === 0) return null;
  return { joined: parts.join(''), tokens: parts };
}

function uniqueNonNull<T>(values: (T | null)[], key: (value: T) => string): T[] {
  const seen = new Set<string>();
  const result: T[] = [];
  for (const value of values) {
    if (value === null) continue;
    const k = key(value);
    if (seen.has(k)) continue;
    seen.add(k);
    result.push(value);
  }
  return result;
}

/** Street number: the explicit field, or the leading number of the first address line ("12B Main St" -> "12b"). */
function streetNumberOf(record: CanonicalRecord): string | null {
  if (record.streetNumber !== null) {
    const folded = foldText(record.streetNumber).replace(/ /g, '');
    if (folded !== '') return folded;
  }
  const leading = /^\s*(\d+[a-z]?)\b/i.exec(record.addressLine1 ?? '');
  return leading ? (leading[1] ?? '').toLowerCase() : null;
}

export function prepareAddress(record: CanonicalRecord): AddressValue {
  const words = addressTokens(record.addressLine1, record.addressLine2).filter((word) => !/\d/.test(word));
  const city = record.city === null ? null : foldText(record.city);
  return {
    number: streetNumberOf(record),
    words,
    city: city === '' ? null : city,
    postcode: normalisePostcode(record.postalCode),
    state: normaliseState(record.state),
  };
}

/**
 * The name in a full-name cell. "Nguyen, Thi Linh", "Garcia, Maria Jose": after the comma every
 * word is a given name, and the one people go by may be the second. Without a comma, "Thi Lan Dang"
 * and "Mary Ann Smith" are read given names first (every word but the last), and "Dang Thi Lan",
 * surname first, is kept as the other reading. Initials add nothing.
 */
function fullNameReadings(fullName: string): { first: string | null; last: string | null; other: { first: string; last: string } | null } {
  const split = splitFullName(fullName);
  const middles = split.middle === null ? [] : split.middle.split(' ').filter((word) => word.length > 1);
  const first = split.first === null ? null : [split.first, ...middles].join(' ');
  if (fullName.includes(',')) return { first, last: split.last, other: null };
  // Two words are compared crosswise anyway (swapped names); three or more need the second reading.
  const words = [split.first, ...middles, split.last].filter((word): word is string => word !== null);
  const other = words.length >= 3 ? { first: words.slice(1).join(' '), last: words[0] as string } : null;
  return { first, last: split.last, other };
}

/** The birth date: the whole-date column, or the day, month and year columns joined. */
function birthDateReadings(record: CanonicalRecord): string[] {
  const whole = record.dateOfBirth;
  const hasParts = record.birthMonth !== null && record.birthYear !== null;
  // "Birth Day" beside "Birth Month" and "Birth Year" was read as the whole date: it is the day.
  if (hasParts && whole !== null && /^\s*\d{1,2}\s*$/.test(whole)) {
    return parseDateParts(record.birthYear, record.birthMonth, record.birthDay ?? whole, 'birth');
  }
  if (whole !== null) return parseDateReadings(whole, 'birth');
  return parseDateParts(record.birthYear, record.birthMonth, record.birthDay, 'birth');
}

export function preparePerson(record: CanonicalRecord): PreparedPerson {
  let first = record.firstName;
  let last = record.lastName;
  let otherReading: PreparedPerson['otherReading'] = null;
  if ((first === null || last === null) && record.fullName !== null) {
    const readings = fullNameReadings(record.fullName);
    if (first === null && last === null && readings.other !== null) {
      otherReading = { given: nameValue(readings.other.first), surname: nameValue(readings.other.last) };
    }
    first ??= readings.first;
    last ??= readings.last;
  }
  const given = nameValue(first);
  const surname = nameValue(last);
  const otherSurnames = record.otherLastNames.map(nameValue).filter((value): value is NameValue => value !== null);
  const dob = birthDateReadings(record);
  const emails = uniqueNonNull(record.emails.flatMap(splitEmailCell).map(normaliseEmail), (email) => email.canonical);
  const phones = uniqueNonNull(record.phones.flatMap(splitPhoneCell).map(normalisePhone), (phone) => phone.e164 ?? phone.last7);
  const memberIds = uniqueNonNull(record.memberIds.map(normaliseIdentifier), (id) => id);
  const address = prepareAddress(record);
  const givenGroups = given === null ? [] : [...new Set(given.tokens.flatMap((token) => nicknameGroups(token)))];
  const usable = given !== null || surname !== null || dob.length > 0 || emails.length > 0 || phones.length > 0
    || memberIds.length > 0;
  return {
    given, surname, otherReading, otherSurnames, dob, emails, phones, gender: normaliseGender(record.gender), address, memberIds,
    givenGroups, usable,
  };
}

const metaphoneCache = new Map<string, readonly string[]>();

/** Double Metaphone codes of one name token (primary and, when different, alternate), cached per thread. */
export function phoneticCodes(token: string): readonly string[] {
  const cached = metaphoneCache.get(token);
  if (cached !== undefined) return cached;
  const [primary, alternate] = doubleMetaphone(token);
  const codes = primary === alternate || alternate === '' ? [primary] : [primary, alternate];
  const result = codes.filter((code) => code !== '');
  if (metaphoneCache.size > 200_000) metaphoneCache.clear();
  metaphoneCache.set(token, result);
  return result;
}
