// Learning from reviewers' decisions (docs/reconciliation.md, "Learning from decisions"). A decided
// pair is kept as its comparison levels (the same per-field levels the engine computes: "surname
// typo", "DOB equal"; no values) with its label. The practice's labels, counted per field level,
// move the next run's EM fit towards what the reviewers decided (fellegi-sunter.ts
// withLabelledCounts). Pure: the job runner loads the counts and passes them in.
import { MISSING } from './compare.js';
import { comparePeople, PERSON_FIELDS } from './features.js';
import { compileFieldMapping, recogniseRecord } from './fields.js';
import { practiceRecord, type PracticePersonFields } from './people.js';
import { preparePerson } from './prepare.js';
import { defaultModel, patternLogBf, withLabelledCounts, type LabelStrength, type LevelCounts } from './fellegi-sunter.js';
import { PERSON_PRIORS } from './scorers.js';

export interface LabelledPair {
  /** One level per PERSON_FIELDS entry, MISSING (-1) when either side lacked the field. */
  levels: readonly number[];
  match: boolean;
}

export interface LabelCounts extends LevelCounts {
  matchCount: number;
  nonMatchCount: number;
}

/** A practice's labels as the engine takes them: counts per field level, and the model version they are. */
export interface LearnedEvidence {
  version: number;
  counts: LabelCounts;
}

/**
 * The weight of a run's own fit against the labels, in pseudo-pairs. m: the EM's m comes from the
 * run's matches, typically thousands, but the labels are the hard cases it gets wrong; 100 lets a
 * few hundred decisions count without one reviewer's handful overturning the fit. u: the random-pair
 * sample u was measured on (6,000 pairs and 300 pseudo-pairs of default), so a rejected pair counts
 * as one more observed non-match; only rare levels (a household's shared mailbox) move much.
 */
export const LABEL_STRENGTH: LabelStrength = { m: 100, u: 6300 };

function zeroCounts(): number[][] {
  return PERSON_FIELDS.map((field) => new Array<number>(field.levels).fill(0));
}

/** Counts the labelled pairs per field level, matches and non-matches apart. */
export function countLabels(pairs: Iterable<LabelledPair>): LabelCounts {
  const matches = zeroCounts();
  const nonMatches = zeroCounts();
  let matchCount = 0;
  let nonMatchCount = 0;
  for (const pair of pairs) {
    const target = pair.match ? matches : nonMatches;
    if (pair.match) matchCount += 1;
    else nonMatchCount += 1;
    addLevels(target, pair.levels, 1);
  }
  return { matches, nonMatches, matchCount, nonMatchCount };
}

function addLevels(counts: number[][], levels: readonly number[], delta: number): void {
  levels.forEach((level, f) => {
    const field = counts[f];
    if (field === undefined || level === MISSING || level < 0 || level >= field.length) return;
    field[level] = (field[level] as number) + delta;
  });
}

export interface LabelMetrics {
  /** Pairs evaluated (every labelled pair, each left out of the counts it is scored with). */
  evaluated: number;
  threshold: number;
  /** Of the pairs scored at or above the threshold, the share that are labelled matches (null: none scored so). */
  precision: number | null;
  /** Of the labelled matches, the share scored at or above the threshold (null: no matches). */
  recall: number | null;
}

const logit = (p: number): number => Math.log(p / (1 - p));

/**
 * Leave-one-out precision and recall of the labels at a threshold: each pair is scored by the
 * default model moved towards all the other labels, with the labels' own share of matches as the
 * prior (the labels are doubtful pairs, so that is the prior they are scored under). A measure of
 * how well the labels agree with each other, not of next month's run, which the benchmark measures.
 */
export function labelMetrics(pairs: readonly LabelledPair[], threshold: number): LabelMetrics {
  const totals = countLabels(pairs);
  const base = defaultModel(PERSON_FIELDS, PERSON_PRIORS, 0.5);
  let truePositives = 0;
  let predicted = 0;
  for (const pair of pairs) {
    const counts = { matches: totals.matches.map((l) => [...l]), nonMatches: totals.nonMatches.map((l) => [...l]) };
    addLevels(pair.match ? counts.matches : counts.nonMatches, pair.levels, -1);
    const matchesLeft = totals.matchCount - (pair.match ? 1 : 0);
    const nonMatchesLeft = totals.nonMatchCount - (pair.match ? 0 : 1);
    const priorOdds = Math.log((matchesLeft + 1) / (nonMatchesLeft + 1));
    const model = withLabelledCounts(PERSON_FIELDS, PERSON_PRIORS, base, counts, LABEL_STRENGTH);
    const accepted = priorOdds + patternLogBf(model, pair.levels) >= logit(Math.min(threshold, 0.999999));
    if (!accepted) continue;
    predicted += 1;
    if (pair.match) truePositives += 1;
  }
  const round = (value: number) => Math.round(value * 10_000) / 10_000;
  return {
    evaluated: pairs.length,
    threshold,
    precision: predicted === 0 ? null : round(truePositives / predicted),
    recall: totals.matchCount === 0 ? null : round(truePositives / totals.matchCount),
  };
}

/**
 * The comparison levels of a decided pair (a row of the file and a practice patient), computed as
 * the engine computes them when it scores the pair. null when the row has nothing to compare.
 */
export class PairLevels {
  private readonly mapping;

  constructor(fieldMapping: Record<string, string> | undefined) {
    this.mapping = compileFieldMapping(fieldMapping);
  }

  of(row: unknown, patient: PracticePersonFields): number[] | null {
    const record = recogniseRecord(row, this.mapping);
    if (record === null) return null;
    const person = preparePerson(record);
    if (!person.usable) return null;
    return comparePeople(person, preparePerson(practiceRecord(patient))).levels;
  }
}

/**
 * The second opinion on doubtful pairs. The labels were all drawn from the review band, so they
 * describe the band's own population (mostly relatives and twins, a few hard matches), not pairs
 * in general: a naive-Bayes model of "match vs not, given the pair is doubtful", with
 * m_band = the run's m (100 pseudo-pairs) plus the labelled matches, u_band = the labelled
 * non-matches with one pseudo-pair per level, and the labels' share of matches as the prior.
 * It may only lower a doubtful pair (to unmatched when it falls under the floor), never raise it:
 * reviewers' labels can settle "not this patient", they never auto-accept a look-alike.
 */
export interface BandModel {
  logPriorOdds: number;
  /** ln(m_band / u_band) per field and level. */
  logBf: number[][];
}

/** Labels needed before the band model is used: below, a handful of decisions would set the rule. */
export const MIN_BAND_LABELS = 20;

export function bandModel(counts: LabelCounts, fittedM: readonly (readonly number[])[]): BandModel | null {
  if (counts.matchCount + counts.nonMatchCount < MIN_BAND_LABELS) return null;
  const logBf = PERSON_FIELDS.map((field, f) => {
    const matches = counts.matches[f] ?? [];
    const nonMatches = counts.nonMatches[f] ?? [];
    const m0 = fittedM[f] ?? [];
    const matchTotal = matches.reduce((sum, n) => sum + n, 0);
    const nonMatchTotal = nonMatches.reduce((sum, n) => sum + n, 0);
    return Array.from({ length: field.levels }, (_, level) => {
      const m = (LABEL_STRENGTH.m * (m0[level] ?? 0) + (matches[level] ?? 0)) / (LABEL_STRENGTH.m + matchTotal);
      const u = (1 + (nonMatches[level] ?? 0)) / (field.levels + nonMatchTotal);
      return Math.log(Math.max(m, 1e-6) / u);
    });
  });
  return { logPriorOdds: Math.log((counts.matchCount + 1) / (counts.nonMatchCount + 1)), logBf };
}

/** The log-odds of a doubtful pair under the band model (MISSING fields say nothing). */
export function bandLogOdds(model: BandModel, levels: readonly number[]): number {
  let total = model.logPriorOdds;
  levels.forEach((level, f) => {
    if (level !== MISSING) total += model.logBf[f]?.[level] ?? 0;
  });
  return total;
}
