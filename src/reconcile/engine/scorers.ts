// The three patient scorers. Each turns a pair's comparison into a log-odds that the two records
// are the same person; decide.ts turns log-odds into calibrated confidences.
import { MISSING } from './compare.js';
import { comparePeople, F, PERSON_FIELDS, type PairComparison } from './features.js';
import {
  fitFellegiSunter, PatternCounter, patternLogBf, TermFrequencies, withLabelledCounts,
  type Alternative, type FellegiSunterModel, type FieldPrior,
} from './fellegi-sunter.js';
import type { PreparedPerson } from './prepare.js';
import { LABEL_STRENGTH, type LearnedEvidence } from './learning.js';
import { DOB_LEVELS, EMAIL_LEVELS, isOneEditApart, PHONE_LEVELS } from './compare.js';

// ---------------------------------------------------------------- FUZZY_MATCH

/**
 * FUZZY_MATCH weights (share of the score each field carries when both records have it).
 * Documented in docs/reconciliation.md: keep in step.
 */
export const FUZZY_WEIGHTS: Readonly<Record<string, number>> = {
  firstName: 0.2,
  lastName: 0.2,
  dateOfBirth: 0.25,
  email: 0.15,
  phone: 0.15,
  address: 0.1,
  locality: 0.05,
  memberId: 0.3,
  gender: 0.02,
};

/** Below this much compared weight the missing remainder counts as a neutral 0.5, so "name only" cannot score high. */
const FUZZY_MIN_EVIDENCE = 0.6;
/** Logistic mapping of the weighted similarity to log-odds: 0.80 -> even odds, 0.95 -> ~95%. */
const FUZZY_MIDPOINT = 0.8;
const FUZZY_SLOPE = 20;

export function fuzzySimilarity(comparison: PairComparison): number {
  let weighted = 0;
  let weight = 0;
  PERSON_FIELDS.forEach((field, f) => {
    if (comparison.levels[f] === MISSING) return;
    const w = FUZZY_WEIGHTS[field.name] ?? 0;
    weighted += w * (comparison.similarities[f] ?? 0);
    weight += w;
  });
  if (weight === 0) return 0;
  if (weight < FUZZY_MIN_EVIDENCE) return (weighted + 0.5 * (FUZZY_MIN_EVIDENCE - weight)) / FUZZY_MIN_EVIDENCE;
  return weighted / weight;
}

export function fuzzyLogOdds(comparison: PairComparison): number {
  return FUZZY_SLOPE * (fuzzySimilarity(comparison) - FUZZY_MIDPOINT);
}

// ---------------------------------------------------------------- ML_MODEL (Fellegi-Sunter)

/**
 * Default m per field level (order as in features.ts): the prior the EM starts from and shrinks
 * towards. u here is the rate among RANDOM pairs of different people (the engine measures it on
 * each run, see estimateRandomPairU; these defaults only smooth rare levels and tiny runs).
 */
export const PERSON_PRIORS: readonly FieldPrior[] = [
  { m: [0.86, 0.05, 0.05, 0.02, 0.02], u: [0.01, 0.004, 0.006, 0.03, 0.95] }, // firstName
  { m: [0.88, 0.06, 0.02, 0.04], u: [0.004, 0.003, 0.02, 0.973] }, // lastName
  { m: [0.9, 0.05, 0.03, 0.02], u: [0.0001, 0.0008, 0.005, 0.9941] }, // dateOfBirth
  { m: [0.8, 0.05, 0.15], u: [0.000002, 0.00002, 0.999978] }, // email
  { m: [0.8, 0.08, 0.12], u: [0.000002, 0.00002, 0.999978] }, // phone
  { m: [0.8, 0.1, 0.04, 0.06], u: [0.00002, 0.0002, 0.01, 0.98978] }, // address (street)
  { m: [0.82, 0.1, 0.04, 0.04], u: [0.01, 0.03, 0.1, 0.86] }, // locality
  { m: [1], u: [1], fixedLogBf: [Math.log(2000)] }, // memberId: agreement only, fixed weight
  { m: [0.97, 0.03], u: [0.5, 0.5] }, // gender
];

/** Random pairs sampled to measure u: enough for the common levels; rare ones lean on the prior. */
const U_SAMPLE_PAIRS = 6000;
/** Pseudo-pairs behind the default u when blending with the sample. */
const U_PRIOR_STRENGTH = 300;
/** Below this many records per side, exact-agreement rates from value frequencies are noise. */
const MIN_RECORDS_FOR_FREQUENCIES = 30;
const U_FLOOR = 1e-7;

/** mulberry32: deterministic sampling, so the same input always gives the same answer. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Probability that a random (incoming, practice) pair shares the value: sum over values of f_in(v) f_practice(v). */
function exactAgreementRate(incoming: readonly (string | null)[], practice: readonly (string | null)[]): number | null {
  const count = (values: readonly (string | null)[]): { counts: Map<string, number>; total: number } => {
    const counts = new Map<string, number>();
    let total = 0;
    for (const value of values) {
      if (value === null) continue;
      counts.set(value, (counts.get(value) ?? 0) + 1);
      total += 1;
    }
    return { counts, total };
  };
  const a = count(incoming);
  const b = count(practice);
  if (a.total < MIN_RECORDS_FOR_FREQUENCIES || b.total < MIN_RECORDS_FOR_FREQUENCIES) return null;
  let rate = 0;
  for (const [value, n] of a.counts) rate += (n / a.total) * ((b.counts.get(value) ?? 0) / b.total);
  return rate;
}

type ExactKey = (person: PreparedPerson) => string | null;
/** Fields whose exact level is measured from value frequencies (precise even when rare). */
const EXACT_KEYS: readonly [number, ExactKey][] = [
  [F.given, (p) => p.given?.joined ?? null],
  [F.surname, (p) => p.surname?.joined ?? null],
  [F.dob, (p) => p.dob[0] ?? null],
  [F.email, (p) => p.emails[0]?.canonical ?? null],
  [F.phone, (p) => p.phones[0]?.last7 ?? null],
];

/**
 * u per field level among random (incoming, practice) pairs: a deterministic sample of pairs for
 * the graded levels, value frequencies for the exact levels, both smoothed with the defaults.
 */
export function estimateRandomPairU(incoming: readonly PreparedPerson[], practice: readonly PreparedPerson[]): number[][] {
  const counts = PERSON_PRIORS.map((prior) => prior.u.map(() => 0));
  const totals = PERSON_PRIORS.map(() => 0);
  if (incoming.length > 0 && practice.length > 0) {
    const random = seededRandom(0x5eed);
    const samples = Math.min(U_SAMPLE_PAIRS, incoming.length * practice.length);
    for (let s = 0; s < samples; s += 1) {
      const a = incoming[Math.floor(random() * incoming.length)] as PreparedPerson;
      const b = practice[Math.floor(random() * practice.length)] as PreparedPerson;
      const { levels } = comparePeople(a, b);
      levels.forEach((level, f) => {
        if (level === MISSING) return;
        (counts[f] as number[])[level] = ((counts[f] as number[])[level] as number) + 1;
        totals[f] = (totals[f] as number) + 1;
      });
    }
  }
  const u = PERSON_PRIORS.map((prior, f) => prior.u.map((u0, level) =>
    Math.max(U_FLOOR, (((counts[f] as number[])[level] as number) + U_PRIOR_STRENGTH * u0) / ((totals[f] as number) + U_PRIOR_STRENGTH))));
  for (const [f, key] of EXACT_KEYS) {
    const rate = exactAgreementRate(incoming.map(key), practice.map(key));
    if (rate === null) continue;
    const fieldU = u[f] as number[];
    fieldU[0] = Math.max(U_FLOOR, rate);
    const rest = fieldU.slice(1).reduce((sum, value) => sum + value, 0);
    const scale = (1 - (fieldU[0] as number)) / rest;
    for (let level = 1; level < fieldU.length; level += 1) fieldU[level] = (fieldU[level] as number) * scale;
  }
  return u;
}

/**
 * The third hypothesis: "another member of the same household". Fellegi-Sunter's independence
 * assumption breaks for relatives: a mother and daughter share surname, street, town and the
 * landline, and multiplying those agreements as if they were independent coincidences gives
 * 0.9999 however clearly the first name and birth date disagree. Under this hypothesis the
 * household fields agree as often as for the person herself (their m), while the personal
 * fields (first name, birth date, email, gender, member id) agree only as often as for any two
 * people (their u), except that a relative shares the birth date more often than a stranger:
 * twins.
 */
export interface HouseholdModel {
  /** ln(lambda_match / lambda_household): the prior odds of the person herself over a relative. */
  logPriorRatio: number;
  /** ln(m / h) per field and level: the evidence for the person herself over a relative. */
  logBf: number[][];
  /** Relatives per match learned from the run (before the floor). */
  learnedRatio: number;
}

/** Fields a relative living with the person shares like she does herself. */
const HOUSEHOLD_FIELDS: ReadonlySet<number> = new Set([F.surname, F.street, F.locality, F.phone]);
/**
 * P(same birth date | two members of one household): twins. About 3% of US births are twins,
 * and a household pair is as often parent and child or spouses as siblings; 2% is that rate,
 * rounded up. Not learned: without labels a twin and a garbled first name look the same.
 */
const HOUSEHOLD_SAME_BIRTH_DATE = 0.02;
/**
 * Lower bound on relatives per match (lambda_household / lambda_match): a run without any household
 * in it learns ~0 and is scored as before; the floor only keeps the logarithm finite.
 */
const MIN_HOUSEHOLD_RATIO = 1e-6;
/** Where the EM starts: one relative per ten matches. */
const INITIAL_HOUSEHOLD_RATIO = 0.1;
/**
 * A run with at least this many relatives per match has households in it (med-spa exports do;
 * FEBRL-style data does not). There a wholly different first name is as well explained by a twin
 * as by a keying accident, and an EM without labels cannot tell which: left free it counts twins as
 * garbled names and learns that first names are garbled often. The run is then refitted with m of
 * "first name clearly different" held at most at its prior (2%: one record of a person in fifty).
 */
const HOUSEHOLDS_PRESENT_RATIO = 0.01;

function householdShare(fs: FellegiSunterModel): number {
  return fs.alternativeShare / fs.lambda;
}

/** True when the run has relatives living together in it (see HOUSEHOLDS_PRESENT_RATIO). */
export function householdsPresent(model: PersonModel): boolean {
  return model.household.learnedRatio >= HOUSEHOLDS_PRESENT_RATIO;
}

/** The priors with m of "first name clearly different" bounded by its own default (HOUSEHOLDS_PRESENT_RATIO). */
const PRIORS_WITH_HOUSEHOLDS: readonly FieldPrior[] = PERSON_PRIORS.map((prior, f) => (f === F.given
  ? { ...prior, maxM: prior.m.map((m, level) => (level === prior.m.length - 1 ? m : null)) }
  : prior));

/** h (the household hypothesis's rate) of the birth-date levels: u, with twins on the exact level. */
function householdBirthDateRates(u: readonly number[]): number[] {
  const h = [...u];
  const exact = Math.max(h[0] as number, HOUSEHOLD_SAME_BIRTH_DATE);
  const rest = h.slice(1).reduce((sum, value) => sum + value, 0);
  h[0] = exact;
  for (let level = 1; level < h.length; level += 1) h[level] = ((h[level] as number) * (1 - exact)) / rest;
  return h;
}

/** ln(m/h) per field and level: 0 for household fields, the model's ln(m/u) for personal ones. */
function householdLogBf(fs: FellegiSunterModel): number[][] {
  return PERSON_FIELDS.map((_, f) => {
    const levels = fs.logBf[f] as number[];
    if (HOUSEHOLD_FIELDS.has(f)) return levels.map(() => 0);
    if (f !== F.dob) return [...levels];
    const m = fs.m[f] as number[];
    const h = householdBirthDateRates(fs.u[f] as number[]);
    // Same order constraint as the model's own weights: exact agreement is the best evidence.
    return m.map((mi, level) => Math.min(Math.log(mi / (h[level] as number)), Math.log((m[0] as number) / (h[0] as number))));
  });
}

function sumOver(levels: readonly number[], logBf: readonly number[][]): number {
  let total = 0;
  for (let f = 0; f < levels.length; f += 1) {
    const level = levels[f] as number;
    if (level !== MISSING) total += logBf[f]?.[level] ?? 0;
  }
  return total;
}

/** The household hypothesis as the EM learns it alongside "same" and "unrelated". */
function householdAlternative(u: readonly (readonly number[])[]): Alternative {
  return {
    matchLikeFields: HOUSEHOLD_FIELDS,
    rates: new Map([[F.dob, householdBirthDateRates(u[F.dob] as number[])]]),
    initialRatio: INITIAL_HOUSEHOLD_RATIO,
  };
}

/**
 * The fitted household hypothesis. Its share of pairs was learned by the EM from the run's own
 * pairs: those whose first name and birth date disagree while the household agrees (a parent, a
 * child) teach it; a run without households learns ~0 and is scored as plain Fellegi-Sunter.
 */
function householdModel(fs: FellegiSunterModel): HouseholdModel {
  const ratio = householdShare(fs);
  return { logPriorRatio: -Math.log(Math.max(ratio, MIN_HOUSEHOLD_RATIO)), logBf: householdLogBf(fs), learnedRatio: ratio };
}

export interface PersonModel {
  fs: FellegiSunterModel;
  household: HouseholdModel;
  givenFrequencies: TermFrequencies;
  surnameFrequencies: TermFrequencies;
}

/**
 * Fits the model: u from random pairs (fixed), then m and lambda by EM on the candidate pairs,
 * grouped by incoming record (a record matches at most one practice record). With the practice's
 * labelled pairs (`learned`), the fit is then moved towards them (learning.ts); without, nothing
 * changes.
 */
export function fitPersonModel(
  comparisonsByRecord: readonly (readonly PairComparison[])[],
  incoming: readonly PreparedPerson[],
  practice: readonly PreparedPerson[],
  learned?: LearnedEvidence,
): PersonModel {
  const counter = new PatternCounter();
  const groups = comparisonsByRecord.map((comparisons) => Int32Array.from(comparisons, (comparison) => counter.add(comparison.levels)));
  const practiceSize = Math.max(1, practice.length);
  const fixedU = estimateRandomPairU(incoming, practice);
  const settings = {
    fixedU,
    initialLambda: 0.5 / practiceSize,
    lambdaDenominator: Math.max(1, incoming.length) * practiceSize,
    alternative: householdAlternative(fixedU),
  };
  let fs = fitFellegiSunter(PERSON_FIELDS, PERSON_PRIORS, counter.patterns(), settings, groups);
  let priors = PERSON_PRIORS;
  if (householdShare(fs) >= HOUSEHOLDS_PRESENT_RATIO) {
    priors = PRIORS_WITH_HOUSEHOLDS;
    fs = fitFellegiSunter(PERSON_FIELDS, priors, counter.patterns(), { ...settings, start: fs }, groups);
  }
  // The household hypothesis below is derived from this m and u, so it learns from the labels too.
  if (learned !== undefined) fs = withLabelledCounts(PERSON_FIELDS, priors, fs, learned.counts, LABEL_STRENGTH);
  return {
    fs,
    household: householdModel(fs),
    givenFrequencies: new TermFrequencies(practice.map((person) => person.given?.joined ?? null)),
    surnameFrequencies: new TermFrequencies(practice.map((person) => person.surname?.joined ?? null)),
  };
}

/**
 * Posterior log-odds that the pair is the same person, against both alternatives: two unrelated
 * people (the classic Fellegi-Sunter odds, with term-frequency adjustment on exact name agreement)
 * and a relative from the same household ({@link HouseholdModel}). The odds against the union of
 * the two are 1 / (1/odds_unrelated + 1/odds_household).
 */
export function fellegiSunterLogOdds(model: PersonModel, comparison: PairComparison, practice: PreparedPerson): number {
  const { lambda } = model.fs;
  const levels = comparison.levels;
  let vsUnrelated = Math.log(lambda / (1 - lambda)) + patternLogBf(model.fs, levels);
  let vsHousehold = model.household.logPriorRatio + sumOver(levels, model.household.logBf);
  // When names were matched crosswise, the practice record's names are still the ones agreed on.
  if (levels[F.given] === 0 && practice.given !== null) {
    const adjustment = model.givenFrequencies.logAdjustment(practice.given.joined);
    vsUnrelated += adjustment;
    vsHousehold += adjustment;
  }
  // A shared surname is a coincidence for strangers (rarer names say more), not for relatives.
  if (levels[F.surname] === 0 && practice.surname !== null) {
    vsUnrelated += model.surnameFrequencies.logAdjustment(practice.surname.joined);
  }
  return -logAddExp(-vsUnrelated, -vsHousehold);
}

function logAddExp(a: number, b: number): number {
  const high = Math.max(a, b);
  return high + Math.log(Math.exp(a - high) + Math.exp(b - high));
}

// ---------------------------------------------------------------- HYBRID rules

const logit = (p: number): number => Math.log(p / (1 - p));

export type RuleName = 'family-member' | 'twin' | 'first-name-conflict' | 'strong-identifier' | 'married-name';

export interface RuleOutcome {
  logOdds: number;
  rule: RuleName | null;
}

export interface RuleContext {
  /** The confidence look-alike rules cap a pair at: inside the review band, see decide.ts reviewCap. */
  reviewCap: number;
  /** The run has relatives living together in it (the model learned a household share). */
  householdsPresent: boolean;
}

function givenNamesClearlyDiffer(comparison: PairComparison, incoming: PreparedPerson, practice: PreparedPerson): boolean {
  const level = comparison.levels[F.given] as number;
  if (level === MISSING || level <= 2) return false;
  if (comparison.swappedNames) return level === 4;
  // A one-letter slip ("Jon" for "Jan") is a typo, not a sibling; anything further is a different name.
  const a = incoming.given?.joined ?? '';
  const b = practice.given?.joined ?? '';
  return !(a.length > 0 && b.length > 0 && a[0] === b[0] && isOneEditApart(a, b));
}

/**
 * Rules for what the model cannot know. The look-alike rules never drop a pair: they move it to
 * the review band (confidence capped at `context.reviewCap`, below the accept threshold and above
 * the review floor), so a person decides; a pair the model already scores lower keeps its score.
 * They only act when the given names clearly differ (not a nickname, not a one-letter slip) and no
 * member id or mailbox ties the two records together:
 * - family-member: similar surname and a shared household (street, phone or email), but a
 *   different date of birth, or no date and a conflicting personal contact (email, phone, gender).
 * - twin: similar surname, the same (or one-typo) date of birth, and either a conflicting personal
 *   contact or gender, or, in a run with households in it, nothing personal (email, phone, member
 *   id) to tell a twin from the person.
 * - first-name-conflict: otherwise, a different first name is accepted only with the same street
 *   address behind it (exports do garble whole first names, and the model has learned from this very
 *   run how often).
 * Two more lift what the model undersells:
 * - strong-identifier: the same member id or mailbox, a name that agrees and no conflicting date
 *   of birth -> at least 97%.
 * - married-name: given name, date of birth and a contact (email, phone or street) agree and only
 *   the surname differs -> at least 90%.
 */
export function applyHybridRules(
  logOdds: number, comparison: PairComparison, incoming: PreparedPerson, practice: PreparedPerson, context: RuleContext,
): RuleOutcome {
  const L = comparison.levels;
  const given = L[F.given] as number;
  const surname = L[F.surname] as number;
  const dob = L[F.dob] as number;
  const street = L[F.street] as number;
  const phone = L[F.phone] as number;
  const email = L[F.email] as number;
  const memberIdAgrees = L[F.memberId] === 0;
  const surnameSimilar = surname !== MISSING && surname <= 2;
  const sameStreet = street !== MISSING && street <= 1;
  const samePhone = phone !== MISSING && phone <= 1;
  const sameHousehold = sameStreet || samePhone || email === 0;
  const personalConflict = email === EMAIL_LEVELS - 1 || phone === PHONE_LEVELS - 1 || L[F.gender] === 1;
  const review = (rule: RuleName): RuleOutcome => ({ logOdds: Math.min(logOdds, logit(context.reviewCap)), rule });

  if (givenNamesClearlyDiffer(comparison, incoming, practice) && !memberIdAgrees && email !== 0) {
    const dobDiffers = dob === DOB_LEVELS - 1 || dob === DOB_LEVELS - 2;
    if (surnameSimilar && sameHousehold && (dobDiffers || (dob === MISSING && personalConflict))) return review('family-member');
    const nothingPersonalAgrees = !samePhone;
    if (surnameSimilar && (dob === 0 || dob === 1) && (personalConflict || (context.householdsPresent && nothingPersonalAgrees))) {
      return review('twin');
    }
    if (!sameStreet) return review('first-name-conflict');
    return { logOdds, rule: null };
  }
  const nameAgrees = (given !== MISSING && given <= 2) || (surname !== MISSING && surname <= 1);
  const dobConflicts = dob === DOB_LEVELS - 1 || dob === DOB_LEVELS - 2;
  if ((memberIdAgrees || email === 0) && nameAgrees && !dobConflicts) {
    if (logOdds < logit(0.97)) return { logOdds: logit(0.97), rule: 'strong-identifier' };
  }
  const contactAgrees = email === 0 || phone === 0 || sameStreet;
  if (given !== MISSING && given <= 1 && dob === 0 && contactAgrees && surname >= 2) {
    if (logOdds < logit(0.9)) return { logOdds: logit(0.9), rule: 'married-name' };
  }
  return { logOdds, rule: null };
}
