// One record, practice or incoming, normalised once so each pair comparison is cheap.
import { doubleMetaphone } from 'double-metaphone';
import type { AddressValue, NameValue } from './compare.js';
import type { CanonicalRecord } from './fields.js';
import { nicknameGroups } from './nicknames.js';
import {
  addressTokens, nameTokens, normaliseEmail, normaliseGender, normaliseIdentifier, normalisePhone,
  normalisePostcode, normaliseState, parseDateReadings, splitEmailCell, splitFullName, splitPhoneCell,
  type NormalisedEmail, type NormalisedPhone,
} from './normalise.js';
import { foldText } from './text.js';

export interface PreparedPerson {
  given: NameValue | null;
  surname: NameValue | null;
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

export function preparePerson(record: CanonicalRecord): PreparedPerson {
  let first = record.firstName;
  let last = record.lastName;
  if ((first === null || last === null) && record.fullName !== null) {
    const split = splitFullName(record.fullName);
    // "Nguyen, Thi Linh", "Garcia, Maria Jose": after the comma every word is a given name, and the
    // one people go by may be the second; initials add nothing.
    const middles = record.fullName.includes(',') && split.middle !== null
      ? split.middle.split(' ').filter((word) => word.length > 1)
      : [];
    first ??= split.first === null ? null : [split.first, ...middles].join(' ');
    last ??= split.last;
  }
  const given = nameValue(first);
  const surname = nameValue(last);
  const otherSurnames = record.otherLastNames.map(nameValue).filter((value): value is NameValue => value !== null);
  const dob = parseDateReadings(record.dateOfBirth, 'birth');
  const emails = uniqueNonNull(record.emails.flatMap(splitEmailCell).map(normaliseEmail), (email) => email.canonical);
  const phones = uniqueNonNull(record.phones.flatMap(splitPhoneCell).map(normalisePhone), (phone) => phone.e164 ?? phone.last7);
  const memberIds = uniqueNonNull(record.memberIds.map(normaliseIdentifier), (id) => id);
  const address = prepareAddress(record);
  const givenGroups = given === null ? [] : [...new Set(given.tokens.flatMap((token) => nicknameGroups(token)))];
  const usable = given !== null || surname !== null || dob.length > 0 || emails.length > 0 || phones.length > 0
    || memberIds.length > 0;
  return {
    given, surname, otherSurnames, dob, emails, phones, gender: normaliseGender(record.gender), address, memberIds,
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
