// Person linkage shared by both targets: prepare, block, compare, score. Patients use it
// directly; appointments use it to decide "same patient" before looking at dates and services.
import { CandidateFinder, buildBlockIndex, defaultCandidateSearch, type CandidateSearch } from './blocking.js';
import { comparePeople, type PairComparison } from './features.js';
import { emptyRecord, type CanonicalRecord } from './fields.js';
import { preparePerson, type PreparedPerson } from './prepare.js';
import {
  applyHybridRules, fellegiSunterLogOdds, fitPersonModel, fuzzyLogOdds, type PersonModel, type RuleName,
} from './scorers.js';

export type Algorithm = 'FUZZY_MATCH' | 'ML_MODEL' | 'HYBRID';

export interface PracticePersonFields {
  firstName: string;
  lastName: string;
  dateOfBirth: string | null;
  email: string | null;
  phoneNumber: string | null;
  gender?: string | null;
  address?: {
    line1?: string | null; line2?: string | null; city?: string | null; state?: string | null;
    postalCode?: string | null; country?: string | null;
  } | null;
  externalIds?: Record<string, string> | null;
}

/** A practice patient as a canonical record (its fields are already named; no key recognition needed). */
export function practiceRecord(patient: PracticePersonFields): CanonicalRecord {
  const record = emptyRecord();
  record.firstName = patient.firstName;
  record.lastName = patient.lastName;
  record.dateOfBirth = patient.dateOfBirth;
  if (patient.email) record.emails.push(patient.email);
  if (patient.phoneNumber) record.phones.push(patient.phoneNumber);
  record.gender = patient.gender ?? null;
  const address = patient.address;
  if (address) {
    record.addressLine1 = address.line1 ?? null;
    record.addressLine2 = address.line2 ?? null;
    record.city = address.city ?? null;
    record.state = address.state ?? null;
    record.postalCode = address.postalCode ?? null;
    record.country = address.country ?? null;
  }
  if (patient.externalIds) {
    for (const id of Object.values(patient.externalIds)) if (typeof id === 'string') record.memberIds.push(id);
  }
  return record;
}

export interface PersonPair {
  incomingIndex: number;
  practiceIndex: number;
  comparison: PairComparison;
  /** Log-odds that the two are the same person, under the chosen algorithm. */
  logOdds: number;
  rule: RuleName | null;
}

export interface PersonLinkage {
  /** Candidate pairs grouped by incoming record (same order as the incoming list); empty for unusable rows. */
  pairsByIncoming: PersonPair[][];
  compared: number;
  blocks: number;
  model: PersonModel | null;
}

export interface PersonLinkOptions {
  algorithm: Algorithm;
  search?: CandidateSearch;
}

/**
 * Links prepared incoming people to prepared practice people. Memory is bounded by
 * incoming x candidate limit (24) pairs; no all-pairs matrix is ever built.
 */
export function linkPeople(
  practice: readonly PreparedPerson[],
  incoming: readonly (PreparedPerson | null)[],
  options: PersonLinkOptions,
): PersonLinkage {
  const index = buildBlockIndex(practice);
  const finder = new CandidateFinder(index, options.search ?? defaultCandidateSearch(practice.length));
  const pairsByIncoming: PersonPair[][] = [];
  let compared = 0;
  incoming.forEach((person, incomingIndex) => {
    const pairs: PersonPair[] = [];
    if (person !== null && person.usable) {
      for (const practiceIndex of finder.find(person)) {
        const comparison = comparePeople(person, practice[practiceIndex] as PreparedPerson);
        pairs.push({ incomingIndex, practiceIndex, comparison, logOdds: 0, rule: null });
      }
    }
    compared += pairs.length;
    pairsByIncoming.push(pairs);
  });

  let model: PersonModel | null = null;
  if (options.algorithm === 'FUZZY_MATCH') {
    for (const pairs of pairsByIncoming) for (const pair of pairs) pair.logOdds = fuzzyLogOdds(pair.comparison);
  } else {
    const usableIncoming = incoming.filter((person): person is PreparedPerson => person !== null && person.usable);
    model = fitPersonModel(pairsByIncoming.map((pairs) => pairs.map((pair) => pair.comparison)), usableIncoming, practice);
    for (const pairs of pairsByIncoming) {
      for (const pair of pairs) {
        const practicePerson = practice[pair.practiceIndex] as PreparedPerson;
        pair.logOdds = fellegiSunterLogOdds(model, pair.comparison, practicePerson);
        if (options.algorithm === 'HYBRID') {
          const outcome = applyHybridRules(pair.logOdds, pair.comparison, incoming[pair.incomingIndex] as PreparedPerson, practicePerson);
          pair.logOdds = outcome.logOdds;
          pair.rule = outcome.rule;
        }
      }
    }
  }
  return { pairsByIncoming, compared, blocks: index.blocks.size, model };
}

export function preparePractice(patients: readonly PracticePersonFields[]): PreparedPerson[] {
  return patients.map((patient) => preparePerson(practiceRecord(patient)));
}
