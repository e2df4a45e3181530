// The comparison vector of one (incoming, practice) pair: one graded level per field.
import {
  compareDates, compareEmails, mailboxName, compareGender, compareGivenNames, compareIdentifiers, compareLocalities,
  comparePhones, compareStreets, compareSurnames, DOB_LEVELS, EMAIL_LEVELS, GIVEN_LEVELS, LOCALITY_LEVELS,
  MISSING, PHONE_LEVELS, STREET_LEVELS, SURNAME_LEVELS, type Comparison,
} from './compare.js';
import type { PreparedPerson } from './prepare.js';

export interface FieldSpec {
  /** Name shown in fieldScores. */
  name: string;
  /** Number of agreement levels (0 = best, levels - 1 = disagreement). */
  levels: number;
}

/** Field order is fixed: the vectors, the models and the weights tables all index by it. */
export const PERSON_FIELDS: readonly FieldSpec[] = [
  { name: 'firstName', levels: GIVEN_LEVELS },
  { name: 'lastName', levels: SURNAME_LEVELS },
  { name: 'dateOfBirth', levels: DOB_LEVELS },
  { name: 'email', levels: EMAIL_LEVELS },
  { name: 'phone', levels: PHONE_LEVELS },
  { name: 'address', levels: STREET_LEVELS },
  { name: 'locality', levels: LOCALITY_LEVELS },
  { name: 'memberId', levels: 1 },
  { name: 'gender', levels: 2 },
];

export const F = {
  given: 0, surname: 1, dob: 2, email: 3, phone: 4, street: 5, locality: 6, memberId: 7, gender: 8,
} as const;

export interface PairComparison {
  /** One level per PERSON_FIELDS entry, MISSING (-1) when either side lacks the field. */
  levels: number[];
  similarities: number[];
  /** First and last names matched crosswise (the export had them the wrong way round). */
  swappedNames: boolean;
}

function nameLevelSum(given: Comparison, surname: Comparison): number {
  const penalty = (comparison: Comparison, worst: number): number => (comparison.level === MISSING ? worst : comparison.level);
  return penalty(given, GIVEN_LEVELS - 1) + penalty(surname, SURNAME_LEVELS - 1);
}

/**
 * "jessica.abernathy@outlook.com" against "jessica.abernathy@aol.com": the same mailbox name at
 * another provider is evidence only when the name is not simply the person's name, which two
 * namesakes share as well.
 */
function emailsOnlyShareTheName(incoming: PreparedPerson, practice: PreparedPerson): boolean {
  const given = practice.given?.joined ?? '';
  const surname = practice.surname?.joined ?? '';
  if (given === '' || surname === '') return false;
  const nameForms = new Set([given + surname, surname + given, given[0] + surname, given + surname[0], given, surname]);
  return incoming.emails.some((a) => practice.emails.some((b) => mailboxName(a) === mailboxName(b) && nameForms.has(a.local.replace(/[^a-z]/g, ''))));
}

/**
 * The comparison vector of one pair. A full name that can be read in two orders ("Dang Thi Lan")
 * is compared both ways and the reading whose names fit better is kept.
 */
export function comparePeople(incoming: PreparedPerson, practice: PreparedPerson): PairComparison {
  const straight = compareReading(incoming, practice);
  const other = incoming.otherReading;
  if (other === null) return straight;
  const crosswise = compareReading({ ...incoming, given: other.given, surname: other.surname, otherReading: null }, practice);
  const nameLevels = (comparison: PairComparison): number => nameLevelSum(
    { level: comparison.levels[F.given] as number, similarity: 0 }, { level: comparison.levels[F.surname] as number, similarity: 0 },
  );
  return nameLevels(crosswise) < nameLevels(straight) ? crosswise : straight;
}

function compareReading(incoming: PreparedPerson, practice: PreparedPerson): PairComparison {
  let given = compareGivenNames(incoming.given, practice.given);
  let surname = compareSurnames(incoming.surname, practice.surname, practice.otherSurnames);
  let swappedNames = false;
  const straightIsPerfect = given.level === 0 && surname.level === 0;
  // Only a record whose names cross-match on the first letter can have them the wrong way round.
  if (!straightIsPerfect && incoming.given !== null && incoming.surname !== null && practice.given !== null && practice.surname !== null
    && (incoming.surname.joined[0] === practice.given.joined[0] || incoming.given.joined[0] === practice.surname.joined[0])) {
    const crossGiven = compareGivenNames(incoming.surname, practice.given);
    const crossSurname = compareSurnames(incoming.given, practice.surname, practice.otherSurnames);
    if (nameLevelSum(crossGiven, crossSurname) < nameLevelSum(given, surname) - 1) {
      given = crossGiven;
      surname = crossSurname;
      swappedNames = true;
    }
  }
  let email = compareEmails(incoming.emails, practice.emails);
  if (email.level === 1 && emailsOnlyShareTheName(incoming, practice)) email = { level: MISSING, similarity: 0 };
  const comparisons = [
    given,
    surname,
    compareDates(incoming.dob, practice.dob),
    email,
    comparePhones(incoming.phones, practice.phones),
    compareStreets(incoming.address, practice.address),
    compareLocalities(incoming.address, practice.address),
    compareIdentifiers(incoming.memberIds, practice.memberIds),
    compareGender(incoming.gender, practice.gender),
  ];
  return {
    levels: comparisons.map((comparison) => comparison.level),
    similarities: comparisons.map((comparison) => comparison.similarity),
    swappedNames,
  };
}

/** Per-field similarities of the compared fields, for the response's fieldScores. */
export function fieldScores(comparison: PairComparison, fields: readonly FieldSpec[] = PERSON_FIELDS): Record<string, number> {
  const scores: Record<string, number> = {};
  fields.forEach((field, i) => {
    if (comparison.levels[i] !== MISSING) scores[field.name] = Math.round((comparison.similarities[i] ?? 0) * 1000) / 1000;
  });
  return scores;
}
