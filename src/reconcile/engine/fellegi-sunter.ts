// Fellegi-Sunter probabilistic linkage. Each field's agreement level has a probability m under
// "same person" and u under "different people"; a pair's evidence is the product of m/u over
// the compared fields (missing fields contribute nothing). m and the prior match rate (lambda)
// are learned by expectation-maximisation from this run's own candidate pairs: no labels.
// u can be learned the same way or, better (and as the engine does), measured on random pairs
// and held fixed: among blocked candidates "different people" agree on names far more often than
// in the population, and EM-learned u would then undersell a full name + birth date agreement.
// Default m/u act as a Dirichlet prior (pseudo-counts), so a run of ten records leans on them and a
// run of ten thousand on its own data.
import { MISSING } from './compare.js';
import type { FieldSpec } from './features.js';

export interface FieldPrior {
  m: readonly number[];
  u: readonly number[];
  /** A fixed log Bayes factor per level (not learned), e.g. for member ids that only ever agree. */
  fixedLogBf?: readonly number[];
  /** Upper bounds on m per level (null: none): what the data cannot tell apart from another hypothesis. */
  maxM?: readonly (number | null)[];
}

/** m clamped to the prior's upper bounds, the rest of the mass spread over the other levels. */
function bounded(m: number[], maxM: readonly (number | null)[] | undefined): number[] {
  if (maxM === undefined) return m;
  let excess = 0;
  let free = 0;
  const result = m.map((value, level) => {
    const bound = maxM[level] ?? null;
    if (bound !== null && value > bound) { excess += value - bound; return bound; }
    return value;
  });
  result.forEach((value, level) => { if ((maxM[level] ?? null) === null) free += value; });
  if (excess === 0 || free === 0) return result;
  return result.map((value, level) => ((maxM[level] ?? null) === null ? value + (excess * value) / free : value));
}

export interface FellegiSunterModel {
  lambda: number;
  /** Share of all pairs the alternative hypothesis explains (0 without one). */
  alternativeShare: number;
  /** Natural-log Bayes factor ln(m/u) per field and level. */
  logBf: number[][];
  m: number[][];
  u: number[][];
  iterations: number;
  /** True when the run's data gave an implausible fit and the defaults were used instead. */
  usedDefaults: boolean;
}

export interface Pattern {
  levels: readonly number[];
  count: number;
}

export interface EmOptions {
  maxIterations: number;
  tolerance: number;
  /** Pseudo-pairs behind the default m (and u) of each field. */
  priorStrength: number;
  initialLambda: number;
  /** u measured elsewhere (random pairs) and held fixed; EM then learns m and lambda only. */
  fixedU?: number[][];
  /**
   * Number of pairs lambda is a rate of. Default: the pairs given. When u comes from random pairs,
   * this is all incoming x practice pairs, since blocking only dropped pairs with no chance.
   */
  lambdaDenominator?: number;
  /** A third hypothesis besides "same" and "unrelated", learned alongside them (see {@link Alternative}). */
  alternative?: Alternative;
  /** A fit to start from (a refit under other priors converges in a few steps instead of from scratch). */
  start?: FellegiSunterModel;
}

/**
 * A third hypothesis, such as "a relative from the same household": on `matchLikeFields` it agrees
 * as often as a match does (their m, learned), on the fields of `rates` with fixed rates of its
 * own, on every other field as often as unrelated pairs (u). Its share of pairs is learned by the
 * same EM; with it the E-step no longer counts relatives as matches, so m is learned from the
 * person herself.
 */
export interface Alternative {
  matchLikeFields: ReadonlySet<number>;
  rates: ReadonlyMap<number, readonly number[]>;
  /** Starting share, as a multiple of lambda. */
  initialRatio: number;
}

const DEFAULT_EM: EmOptions = { maxIterations: 60, tolerance: 1e-6, priorStrength: 30, initialLambda: 0.05 };
const PROBABILITY_FLOOR = 1e-5;

/** Groups identical comparison vectors: EM then runs over a few thousand patterns, not every pair. */
export class PatternCounter {
  private readonly indexByKey = new Map<string, number>();
  private readonly list: Pattern[] = [];

  /** Counts one comparison vector and returns its pattern's position in {@link patterns}. */
  add(levels: readonly number[]): number {
    const key = levels.join(',');
    const index = this.indexByKey.get(key);
    if (index !== undefined) {
      (this.list[index] as Pattern).count += 1;
      return index;
    }
    this.indexByKey.set(key, this.list.length);
    this.list.push({ levels: [...levels], count: 1 });
    return this.list.length - 1;
  }

  patterns(): Pattern[] {
    return this.list;
  }
}

function normalised(values: number[]): number[] {
  const total = values.reduce((sum, value) => sum + value, 0);
  return values.map((value) => Math.max(value / total, PROBABILITY_FLOOR));
}

/**
 * Enforces "exact agreement is the strongest evidence and disagreement the weakest" (EM on a
 * small run can produce wiggles). Middle levels (nickname, typo, close) are not strictly ordered
 * against each other, so they are only clamped between the two ends.
 */
function ordered(logBf: number[]): number[] {
  const result = [...logBf];
  const last = result.length - 1;
  if (last < 1) return result;
  for (let level = 1; level <= last; level += 1) result[level] = Math.min(result[level] as number, result[0] as number);
  for (let level = 0; level < last; level += 1) result[last] = Math.min(result[last] as number, result[level] as number);
  return result;
}

function modelFrom(
  fields: readonly FieldSpec[], priors: readonly FieldPrior[], m: number[][], u: number[][], lambda: number,
  iterations: number, usedDefaults: boolean,
): FellegiSunterModel {
  const logBf = fields.map((_, f) => {
    const fixed = priors[f]?.fixedLogBf;
    if (fixed !== undefined) return [...fixed];
    const mf = m[f] as number[];
    const uf = u[f] as number[];
    return ordered(mf.map((mi, level) => Math.log(mi / (uf[level] as number))));
  });
  return { lambda, alternativeShare: 0, logBf, m, u, iterations, usedDefaults };
}

/** The model made of the default m/u alone (used when a run has too few pairs to learn from). */
export function defaultModel(fields: readonly FieldSpec[], priors: readonly FieldPrior[], lambda: number): FellegiSunterModel {
  const m = priors.map((prior) => normalised([...prior.m]));
  const u = priors.map((prior) => normalised([...prior.u]));
  return modelFrom(fields, priors, m, u, lambda, 0, true);
}

/** The evidence (log-odds contribution, without the prior) of one comparison vector. */
export function patternLogBf(model: FellegiSunterModel, levels: readonly number[]): number {
  let total = 0;
  for (let f = 0; f < levels.length; f += 1) {
    const level = levels[f] as number;
    if (level === MISSING) continue;
    total += model.logBf[f]?.[level] ?? 0;
  }
  return total;
}

function logBfOfPatterns(patterns: readonly Pattern[], m: number[][], u: number[][]): Float64Array {
  const result = new Float64Array(patterns.length);
  patterns.forEach((pattern, p) => {
    let total = 0;
    for (let f = 0; f < pattern.levels.length; f += 1) {
      const level = pattern.levels[f] as number;
      if (level === MISSING) continue;
      total += Math.log(((m[f] as number[])[level] as number) / ((u[f] as number[])[level] as number));
    }
    result[p] = total;
  });
  return result;
}

/** ln(P(levels | alternative) / P(levels | unrelated)) per pattern, under the current m and u. */
function alternativeLogRatios(patterns: readonly Pattern[], alternative: Alternative, m: number[][], u: number[][]): Float64Array {
  const result = new Float64Array(patterns.length);
  patterns.forEach((pattern, p) => {
    let total = 0;
    for (let f = 0; f < pattern.levels.length; f += 1) {
      const level = pattern.levels[f] as number;
      if (level === MISSING) continue;
      const unrelated = (u[f] as number[])[level] as number;
      const own = alternative.rates.get(f);
      if (own !== undefined) total += Math.log((own[level] as number) / unrelated);
      else if (alternative.matchLikeFields.has(f)) total += Math.log(((m[f] as number[])[level] as number) / unrelated);
    }
    result[p] = total;
  });
  return result;
}

/**
 * Posterior match probability of every pattern occurrence, summed per pattern.
 * With `groups` (the pattern of each candidate pair, grouped by incoming record) the E-step knows
 * that a record matches at most one candidate: P(j) = w_j / (1 + sum w), w = prior odds x evidence.
 * Siblings then compete with the person they live with instead of all being counted as matches,
 * which keeps the EM from learning "same household" instead of "same person".
 */
function expectedMatches(
  patterns: readonly Pattern[], groups: readonly Int32Array[] | undefined, logBf: Float64Array, logLambdaOdds: number,
): Float64Array {
  const perPattern = new Float64Array(patterns.length);
  // Only `logBf` matters here: with an alternative hypothesis the caller passes the odds of a match
  // against "unrelated or alternative", ln(w / (1 + a)); a group then still holds at most one match.
  if (groups === undefined) {
    patterns.forEach((pattern, p) => {
      perPattern[p] = pattern.count / (1 + Math.exp(-(logLambdaOdds + (logBf[p] as number))));
    });
    return perPattern;
  }
  for (const group of groups) {
    if (group.length === 0) continue;
    let maxLog = 0;
    for (let i = 0; i < group.length; i += 1) maxLog = Math.max(maxLog, logLambdaOdds + (logBf[group[i] as number] as number));
    let denominator = Math.exp(-maxLog);
    for (let i = 0; i < group.length; i += 1) denominator += Math.exp(logLambdaOdds + (logBf[group[i] as number] as number) - maxLog);
    for (let i = 0; i < group.length; i += 1) {
      const p = group[i] as number;
      perPattern[p] = (perPattern[p] as number) + Math.exp(logLambdaOdds + (logBf[p] as number) - maxLog) / denominator;
    }
  }
  return perPattern;
}

/**
 * Learns m, u and lambda from unlabelled comparison patterns (optionally grouped by incoming
 * record, see {@link expectedMatches}). The result is sanity-checked: if agreement on a name or
 * the date of birth ended up as no evidence, or evidence AGAINST a match (a fit that split the pairs on
 * something else), the defaults are returned instead.
 */
export function fitFellegiSunter(
  fields: readonly FieldSpec[],
  priors: readonly FieldPrior[],
  patterns: readonly Pattern[],
  options: Partial<EmOptions> = {},
  groups?: readonly Int32Array[],
): FellegiSunterModel {
  const settings = { ...DEFAULT_EM, ...options };
  const fieldCount = fields.length;
  let m = settings.start?.m.map((levels, f) => bounded([...levels], priors[f]?.maxM)) ?? priors.map((prior) => normalised([...prior.m]));
  let u = settings.fixedU ?? priors.map((prior) => normalised([...prior.u]));
  let lambda = settings.start?.lambda ?? settings.initialLambda;
  const totalPairs = patterns.reduce((sum, pattern) => sum + pattern.count, 0);
  const lambdaDenominator = settings.lambdaDenominator ?? totalPairs;
  if (totalPairs === 0) return modelFrom(fields, priors, m, u, lambda, 0, true);

  const alternative = settings.alternative;
  let alternativeShare = alternative === undefined ? 0
    : settings.start !== undefined && settings.start.alternativeShare > 0 ? settings.start.alternativeShare : lambda * alternative.initialRatio;
  let iteration = 0;
  for (; iteration < settings.maxIterations; iteration += 1) {
    const logBf = logBfOfPatterns(patterns, m, u);
    const logLambdaOdds = Math.log(lambda / (1 - lambda));
    // Per pattern, the alternative's odds against "unrelated": a = share/(1-share) * P(e|alt)/P(e|unrelated).
    let alternativeOdds: Float64Array | null = null;
    if (alternative !== undefined) {
      const ratios = alternativeLogRatios(patterns, alternative, m, u);
      const logShareOdds = Math.log(alternativeShare / (1 - lambda));
      alternativeOdds = ratios.map((ratio) => Math.exp(Math.min(50, logShareOdds + ratio)));
      for (let p = 0; p < patterns.length; p += 1) logBf[p] = (logBf[p] as number) - Math.log1p(alternativeOdds[p] as number);
    }
    const matchesPerPattern = expectedMatches(patterns, groups, logBf, logLambdaOdds);
    let expectedAlternativeCount = 0;
    // Expected counts start at the prior pseudo-counts.
    const mCounts = priors.map((prior) => normalised([...prior.m]).map((p) => p * settings.priorStrength));
    const uCounts = priors.map((prior) => normalised([...prior.u]).map((p) => p * settings.priorStrength));
    let expectedMatchCount = 0;
    patterns.forEach((pattern, p) => {
      const asMatch = matchesPerPattern[p] as number;
      const asNonMatch = pattern.count - asMatch;
      expectedMatchCount += asMatch;
      if (alternativeOdds !== null) {
        const odds = alternativeOdds[p] as number;
        expectedAlternativeCount += (asNonMatch * odds) / (1 + odds);
      }
      for (let f = 0; f < fieldCount; f += 1) {
        const level = pattern.levels[f] as number;
        if (level === MISSING) continue;
        (mCounts[f] as number[])[level] = ((mCounts[f] as number[])[level] as number) + asMatch;
        (uCounts[f] as number[])[level] = ((uCounts[f] as number[])[level] as number) + asNonMatch;
      }
    });
    const nextM = mCounts.map((counts, f) => bounded(normalised(counts), priors[f]?.maxM));
    const nextU = settings.fixedU ?? uCounts.map(normalised);
    const nextLambda = Math.min(0.5, Math.max(1e-9, expectedMatchCount / lambdaDenominator));
    const nextAlternativeShare = Math.min(0.5, Math.max(1e-15, expectedAlternativeCount / lambdaDenominator));
    let change = Math.abs(Math.log(nextLambda / lambda)) * 1e-3;
    if (alternative !== undefined) change = Math.max(change, Math.abs(Math.log(nextAlternativeShare / alternativeShare)) * 1e-3);
    for (let f = 0; f < fieldCount; f += 1) {
      for (let level = 0; level < (nextM[f] as number[]).length; level += 1) {
        change = Math.max(
          change,
          Math.abs(((nextM[f] as number[])[level] as number) - ((m[f] as number[])[level] as number)),
          Math.abs(((nextU[f] as number[])[level] as number) - ((u[f] as number[])[level] as number)),
        );
      }
    }
    m = nextM;
    u = nextU;
    lambda = nextLambda;
    alternativeShare = nextAlternativeShare;
    if (change < settings.tolerance) break;
  }

  const model = { ...modelFrom(fields, priors, m, u, lambda, iteration, false), alternativeShare: alternative === undefined ? 0 : alternativeShare };
  const identifying = fields
    .map((field, f) => ({ field, f }))
    .filter(({ field }) => field.name === 'firstName' || field.name === 'lastName' || field.name === 'dateOfBirth');
  const plausible = identifying.every(({ f }) => ((model.logBf[f] as number[])[0] as number) > 0);
  if (plausible) return model;
  const fallbackU = settings.fixedU ?? priors.map((prior) => normalised([...prior.u]));
  return modelFrom(fields, priors, priors.map((prior) => normalised([...prior.m])), fallbackU, lambda, iteration, true);
}

/** Per field and level, how many labelled pairs showed that level (MISSING levels not counted). */
export interface LevelCounts {
  matches: readonly (readonly number[])[];
  nonMatches: readonly (readonly number[])[];
}

/** How much a fitted m (or u) weighs against labelled pairs, in pseudo-pairs. */
export interface LabelStrength {
  m: number;
  u: number;
}

/**
 * A fitted model moved towards labelled pairs (a reviewer's accepts and rejects): per field,
 * m = (m_fit * k_m + matches with the level) / (k_m + labelled matches), and u the same way with the
 * labelled non-matches. The fit acts as a Dirichlet prior, so ten labels nudge it and a thousand
 * decide it. Fixed weights (member ids) and the upper bounds on m stay as they are; lambda too
 * (labels are picked from the doubtful band, so their share of matches says nothing of the run's).
 */
export function withLabelledCounts(
  fields: readonly FieldSpec[], priors: readonly FieldPrior[], model: FellegiSunterModel, counts: LevelCounts, strength: LabelStrength,
): FellegiSunterModel {
  const blend = (fitted: number[][], labelled: readonly (readonly number[])[], k: number) => fitted.map((levels, f) => {
    const observed = labelled[f];
    if (observed === undefined) return levels;
    const total = observed.reduce((sum, n) => sum + n, 0);
    if (total === 0) return levels;
    return normalised(levels.map((p, level) => (p * k + (observed[level] ?? 0)) / (k + total)));
  });
  const m = blend(model.m, counts.matches, strength.m).map((levels, f) => bounded(levels, priors[f]?.maxM));
  const u = blend(model.u, counts.nonMatches, strength.u);
  return { ...modelFrom(fields, priors, m, u, model.lambda, model.iterations, model.usedDefaults), alternativeShare: model.alternativeShare };
}

/**
 * Term-frequency adjustment: agreeing on "Smith" is weaker evidence than agreeing on "Zbigniewski".
 * For a value with share tf among the practice's records, the Bayes factor of exact agreement is
 * scaled by sum(tf^2) / tf(value): the average agreement rate over this value's own rate.
 */
export class TermFrequencies {
  private readonly counts = new Map<string, number>();
  private total = 0;
  private sumOfSquares = 0;

  constructor(values: Iterable<string | null>, private readonly maxLogAdjustment = 2.5) {
    for (const value of values) {
      if (value === null || value === '') continue;
      this.counts.set(value, (this.counts.get(value) ?? 0) + 1);
      this.total += 1;
    }
    for (const count of this.counts.values()) this.sumOfSquares += (count / this.total) ** 2;
  }

  /** Natural-log adjustment to add to the exact-agreement weight for this value. */
  logAdjustment(value: string): number {
    // Under ~50 values the frequencies are noise; leave the learned average alone.
    if (this.total < 50) return 0;
    const share = Math.max(this.counts.get(value) ?? 1, 1) / this.total;
    const adjustment = Math.log(this.sumOfSquares / share);
    return Math.max(-this.maxLogAdjustment, Math.min(this.maxLogAdjustment, adjustment));
  }
}
