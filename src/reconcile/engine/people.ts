// Person linkage shared by both targets: prepare, block, compare, score. Patients use it
// directly; appointments use it to decide "same patient" before looking at dates and services.
import { CandidateFinder, buildBlockIndex, defaultCandidateSearch, type CandidateSearch } from './blocking.js';
import { compareKeys } from './decide.js';
import { comparePeople, type PairComparison } from './features.js';
import { emptyRecord, type CanonicalRecord } from './fields.js';
import { bandLogOdds, bandModel, type LearnedEvidence } from './learning.js';
import { preparePerson, type PreparedPerson } from './prepare.js';
import {
  applyHybridRules, fellegiSunterLogOdds, fitPersonModel, fuzzyLogOdds, householdsPresent,
  type PersonModel, type RuleContext, type RuleName,
} from './scorers.js';

export type Algorithm = 'FUZZY_MATCH' | 'ML_MODEL' | 'HYBRID';

/** The review cap under the default threshold 0.8 and floor 0.5. */
const DEFAULT_REVIEW_CAP = 0.65;

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
  /** Each incoming record's content key (same order as the incoming list): the tie-break for assignment. */
  incomingKeys: string[];
}

export interface PersonLinkOptions {
  algorithm: Algorithm;
  search?: CandidateSearch;
  /** The practice records' ids: they order records of identical content (content orders the rest). */
  practiceIds?: readonly string[];
  /** HYBRID: the confidence look-alike rules cap a pair at (inside the review band; default 0.65). */
  reviewCap?: number;
  /** ML_MODEL, HYBRID: the practice's labelled pairs (learning.ts); without them the run learns from itself alone. */
  learned?: LearnedEvidence | undefined;
  /** The doubtful band [floor, acceptAt) the learned band model re-scores (learning.ts); default 0.5 to 0.8. */
  band?: { floor: number; acceptAt: number };
}

/** A prepared record's content as a key: two loads of the same row give the same key. */
export function contentKey(person: PreparedPerson | null): string {
  return person === null ? '' : JSON.stringify(person);
}

/** Positions sorted by key (arrival order only among equal keys, i.e. identical records). */
function canonicalOrder(keys: readonly string[]): number[] {
  return keys.map((_, i) => i).sort((a, b) => compareKeys(keys[a] as string, keys[b] as string) || a - b);
}

/**
 * Links prepared incoming people to prepared practice people. Memory is bounded by
 * incoming x candidate limit (24) pairs; no all-pairs matrix is ever built.
 *
 * The result does not depend on the order the records arrive in: both lists are first put in a
 * canonical order (both by content; practice records with identical content by id), and everything order can leak into runs
 * on that order: the random-pair sample that measures u, the EM's sums over patterns and records,
 * the term-frequency tables, blocking's tie-breaks among equally ranked candidates and the cap on
 * candidates per row. A rerun on the same data, loaded in any order, gives the same digits.
 */
export function linkPeople(
  practice: readonly PreparedPerson[],
  incoming: readonly (PreparedPerson | null)[],
  options: PersonLinkOptions,
): PersonLinkage {
  // By content first: two servers holding the same patients under different ids (each generates
  // its own) must sample, fit and break ties alike. The id only orders identical records.
  const practiceOrder = canonicalOrder(practice.map((person, i) => `${contentKey(person)}\u0000${options.practiceIds?.[i] ?? ''}`));
  const incomingKeys = incoming.map(contentKey);
  const incomingOrder = canonicalOrder(incomingKeys);
  const linkage = linkInCanonicalOrder(
    practiceOrder.map((i) => practice[i] as PreparedPerson),
    incomingOrder.map((i) => incoming[i] ?? null),
    options,
  );
  // Back to the caller's positions (the pairs are this call's own: renumbered in place).
  const pairsByIncoming: PersonPair[][] = new Array(incoming.length);
  linkage.pairsByIncoming.forEach((pairs, canonical) => {
    const incomingIndex = incomingOrder[canonical] as number;
    for (const pair of pairs) {
      pair.incomingIndex = incomingIndex;
      pair.practiceIndex = practiceOrder[pair.practiceIndex] as number;
    }
    pairsByIncoming[incomingIndex] = pairs;
  });
  return { ...linkage, pairsByIncoming, incomingKeys };
}

function linkInCanonicalOrder(
  practice: readonly PreparedPerson[],
  incoming: readonly (PreparedPerson | null)[],
  options: PersonLinkOptions,
): Omit<PersonLinkage, 'incomingKeys'> {
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
    model = fitPersonModel(pairsByIncoming.map((pairs) => pairs.map((pair) => pair.comparison)), usableIncoming, practice, options.learned);
    const context: RuleContext = { reviewCap: options.reviewCap ?? DEFAULT_REVIEW_CAP, householdsPresent: householdsPresent(model) };
    for (const pairs of pairsByIncoming) {
      for (const pair of pairs) {
        const practicePerson = practice[pair.practiceIndex] as PreparedPerson;
        pair.logOdds = fellegiSunterLogOdds(model, pair.comparison, practicePerson);
        if (options.algorithm === 'HYBRID') {
          const outcome = applyHybridRules(pair.logOdds, pair.comparison, incoming[pair.incomingIndex] as PreparedPerson, practicePerson, context);
          pair.logOdds = outcome.logOdds;
          pair.rule = outcome.rule;
        }
      }
    }
    if (options.learned !== undefined) settleDoubtfulPairs(pairsByIncoming, options.learned, model, options.band ?? DEFAULT_BAND);
  }
  return { pairsByIncoming, compared, blocks: index.blocks.size, model };
}

const DEFAULT_BAND = { floor: 0.5, acceptAt: 0.8 };
const logit = (p: number): number => Math.log(p / (1 - p));

/**
 * Re-scores the pairs that land in the review band with the practice's labelled pairs (a pair's
 * own posterior, before its record's candidates compete, decides whether it is doubtful). The band
 * model can only lower a pair: see learning.ts bandModel.
 */
function settleDoubtfulPairs(pairsByIncoming: PersonPair[][], learned: LearnedEvidence, model: PersonModel, band: { floor: number; acceptAt: number }): void {
  const second = bandModel(learned.counts, model.fs.m);
  if (second === null) return;
  const low = logit(band.floor);
  const high = logit(Math.min(band.acceptAt, 0.999999));
  for (const pairs of pairsByIncoming) {
    for (const pair of pairs) {
      if (pair.logOdds < low || pair.logOdds >= high) continue;
      pair.logOdds = Math.min(pair.logOdds, bandLogOdds(second, pair.comparison.levels));
    }
  }
}

export function preparePractice(patients: readonly PracticePersonFields[]): PreparedPerson[] {
  return patients.map((patient) => preparePerson(practiceRecord(patient)));
}
