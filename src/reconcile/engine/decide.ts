// From per-pair log-odds to at most one match per incoming record, with a confidence that
// accounts for ambiguity and up to three runner-ups.

export interface ScoredCandidate {
  practiceIndex: number;
  logOdds: number;
  /** The candidate's own id: ties are broken by it, never by the order the records arrived in. */
  stableKey: string;
}

export interface RankedCandidate {
  practiceIndex: number;
  confidence: number;
  stableKey: string;
}

/** Plain code-unit order: the same on every machine and locale (localeCompare is not). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Confidence of each candidate under "this record is at most one of these people":
 * P(candidate j) = odds_j / (1 + sum of all candidates' odds), where odds are the pairwise
 * posterior odds. One candidate at 99% stays at 99%; two look-alikes at 99% each become ~50%
 * each, which is the honest answer when the runner-up is as good as the best.
 */
export function rankCandidates(candidates: readonly ScoredCandidate[]): RankedCandidate[] {
  if (candidates.length === 0) return [];
  // A fixed order before summing: floating-point addition is not associative, so a sum taken in
  // arrival order could differ in the last digit between two loads of the same data.
  candidates = [...candidates].sort((a, b) => b.logOdds - a.logOdds || compareKeys(a.stableKey, b.stableKey));
  // log-sum-exp with the "no match" term exp(0) = 1 included, for numerical safety.
  let maxLog = 0;
  for (const candidate of candidates) maxLog = Math.max(maxLog, candidate.logOdds);
  let denominator = Math.exp(-maxLog);
  for (const candidate of candidates) denominator += Math.exp(candidate.logOdds - maxLog);
  return candidates
    .map((candidate) => ({
      practiceIndex: candidate.practiceIndex,
      confidence: Math.exp(candidate.logOdds - maxLog) / denominator,
      stableKey: candidate.stableKey,
    }))
    .sort((a, b) => b.confidence - a.confidence || compareKeys(a.stableKey, b.stableKey));
}

/** The review floor when none is named (v2 jobs' default; a threshold below it is the floor itself). */
export const DEFAULT_REVIEW_FLOOR = 0.5;

/**
 * The confidence a look-alike rule caps a pair at: inside the review band, halfway between the
 * floor and the accept threshold, so the pair is shown to a person instead of being accepted or
 * dropped. Without a band (floor = threshold) just below the threshold.
 */
export function reviewCap(acceptAt: number, reviewFloor: number): number {
  const floor = Math.min(reviewFloor, acceptAt);
  if (acceptAt - floor >= 0.02) return (floor + acceptAt) / 2;
  return Math.max(0.01, acceptAt - 0.01);
}

/** Confidences are reported to four decimals, never exactly 1: no linkage is certain. */
export function roundConfidence(confidence: number): number {
  return Math.min(0.9999, Math.round(confidence * 10_000) / 10_000);
}

export interface RecordDecision {
  recordIndex: number;
  ranked: RankedCandidate[];
  /** The incoming row's content key: oneToOne ties go by it, not by the row's position in the file. */
  stableKey: string;
}

export interface Assignment {
  recordIndex: number;
  /** Position in `ranked` of the chosen candidate. */
  choice: number;
}

/**
 * Picks each record's best candidate at or above the threshold. With oneToOne, practice records
 * are handed out greedily by confidence, so a practice record goes to the incoming row that
 * fits it best and the others fall back to their next candidate (if still above the threshold).
 * `capacity` is how many records one practice record may take under oneToOne (1: strictly one to
 * one; a sale that may carry two rewards is 2). Equal confidences are settled by the rows' and
 * candidates' stable keys, so shuffling the input hands out the same practice records.
 */
export function assign(decisions: readonly RecordDecision[], threshold: number, oneToOne: boolean, capacity = 1): Assignment[] {
  if (!oneToOne) {
    const result: Assignment[] = [];
    for (const decision of decisions) {
      const best = decision.ranked[0];
      if (best !== undefined && roundConfidence(best.confidence) >= threshold) {
        result.push({ recordIndex: decision.recordIndex, choice: 0 });
      }
    }
    return result;
  }
  const options: { decision: number; choice: number; confidence: number; practiceIndex: number; rowKey: string; candidateKey: string }[] = [];
  decisions.forEach((decision, d) => {
    decision.ranked.forEach((candidate, choice) => {
      if (roundConfidence(candidate.confidence) >= threshold) {
        options.push({
          decision: d, choice, confidence: candidate.confidence, practiceIndex: candidate.practiceIndex,
          rowKey: decision.stableKey, candidateKey: candidate.stableKey,
        });
      }
    });
  });
  options.sort((a, b) => b.confidence - a.confidence || compareKeys(a.rowKey, b.rowKey)
    || compareKeys(a.candidateKey, b.candidateKey) || a.decision - b.decision);
  const taken = new Map<number, number>();
  const assigned = new Map<number, number>();
  for (const option of options) {
    const uses = taken.get(option.practiceIndex) ?? 0;
    if (assigned.has(option.decision) || uses >= capacity) continue;
    assigned.set(option.decision, option.choice);
    taken.set(option.practiceIndex, uses + 1);
  }
  return [...assigned.entries()]
    .map(([d, choice]) => ({ recordIndex: (decisions[d] as RecordDecision).recordIndex, choice }))
    .sort((a, b) => a.recordIndex - b.recordIndex);
}
