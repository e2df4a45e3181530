// The reconciliation engine's stable interface. Pure and synchronous: plain JSON in, plain JSON
// out, so it can run inside a worker thread. No HTTP, no database.
import { assign, DEFAULT_REVIEW_FLOOR, rankCandidates, reviewCap, roundConfidence, type RecordDecision } from './decide.js';
import { fieldScores } from './features.js';
import type { LearnedEvidence } from './learning.js';
import { compileFieldMapping, recogniseRecord } from './fields.js';
import { linkPeople, preparePractice, type Algorithm, type PersonLinkage } from './people.js';
import { preparePerson, type PreparedPerson } from './prepare.js';
import { reconcileAppointmentRows } from './appointments.js';

export { appointmentSales, reconcileTransactions, saleEntityIds, type TransactionOptions, type TransactionResult } from './transactions.js';

export type { Algorithm } from './people.js';

export interface PracticePatient {
  id: string;
  firstName: string;
  lastName: string;
  /** YYYY-MM-DD */
  dateOfBirth: string | null;
  email: string | null;
  /** E.164 */
  phoneNumber: string | null;
  gender?: string | null;
  address?: {
    line1?: string | null; line2?: string | null; city?: string | null; state?: string | null;
    postalCode?: string | null; country?: string | null;
  } | null;
  externalIds?: Record<string, string> | null;
}

export interface PracticeAppointment {
  id: string;
  patient: PracticePatient;
  /** ISO 8601 */
  startTime: string;
  serviceName: string;
  serviceCategory?: string | null;
  priceCents: number | null;
  status: string;
}

export interface ReconcileOptions {
  algorithm: Algorithm;
  /** Threshold 0.1..1: matches below it are reported unmatched. */
  confidence: number;
  /**
   * The accept threshold when `confidence` is a review floor below it (v2 jobs). HYBRID's
   * look-alike rules cap a pair inside [floor, acceptAt). Default: `confidence`, with the floor at
   * min(0.5, confidence).
   */
  acceptAt?: number;
  /** Each practice record matched at most once (default false). */
  oneToOne?: boolean;
  /** Input key -> canonical field ("ignore" drops a key); wins over key recognition. */
  fieldMapping?: Record<string, string>;
  /** PATIENTS with ML_MODEL or HYBRID: the practice's labelled pairs, from reviewers' decisions (learning.ts). */
  learned?: LearnedEvidence;
}

export interface Candidate {
  entityId: string;
  confidence: number;
}

export interface ReconciliationMatch {
  recordIndex: number;
  entityType: 'PATIENT' | 'APPOINTMENT' | 'SALE';
  entityId: string;
  confidence: number;
  fieldScores: Record<string, number>;
  /** Up to 3 runner-ups. */
  candidates: Candidate[];
}

export interface ReconcileResult {
  matches: ReconciliationMatch[];
  unmatched: number[];
  /** Mean confidence of the returned matches, 0 if none. */
  confidence: number;
  algorithm: Algorithm;
  stats: { compared: number; blocks: number };
}

/** Runner-ups below this are noise and are not listed. */
export const RUNNER_UP_FLOOR = 0.01;
export const MAX_RUNNER_UPS = 3;

/** Recognises and prepares the incoming rows; non-objects and rows with no usable field become null. */
export function prepareIncoming(incoming: readonly unknown[], fieldMapping: Record<string, string> | undefined): (PreparedPerson | null)[] {
  const mapping = compileFieldMapping(fieldMapping);
  return incoming.map((row) => {
    const record = recogniseRecord(row, mapping);
    if (record === null) return null;
    const person = preparePerson(record);
    return person.usable ? person : null;
  });
}

export function summarise(matches: ReconciliationMatch[], incomingCount: number, algorithm: Algorithm, stats: ReconcileResult['stats']): ReconcileResult {
  const matched = new Set(matches.map((match) => match.recordIndex));
  const unmatched: number[] = [];
  for (let i = 0; i < incomingCount; i += 1) if (!matched.has(i)) unmatched.push(i);
  const mean = matches.length === 0 ? 0 : matches.reduce((sum, match) => sum + match.confidence, 0) / matches.length;
  return { matches, unmatched, confidence: roundConfidence(mean), algorithm, stats };
}

function patientMatches(
  practice: readonly PracticePatient[], linkage: PersonLinkage, options: ReconcileOptions,
): ReconciliationMatch[] {
  const decisions: RecordDecision[] = linkage.pairsByIncoming.map((pairs, recordIndex) => ({
    recordIndex,
    ranked: rankCandidates(pairs.map((pair) => ({
      practiceIndex: pair.practiceIndex, logOdds: pair.logOdds, stableKey: (practice[pair.practiceIndex] as PracticePatient).id,
    }))),
    stableKey: linkage.incomingKeys[recordIndex] ?? '',
  }));
  const assignments = assign(decisions, options.confidence, options.oneToOne ?? false);
  return assignments.map(({ recordIndex, choice }) => {
    const ranked = (decisions[recordIndex] as RecordDecision).ranked;
    const chosen = ranked[choice]!;
    const pair = (linkage.pairsByIncoming[recordIndex] ?? []).find((p) => p.practiceIndex === chosen.practiceIndex)!;
    const runnerUps = ranked
      .filter((_, position) => position !== choice)
      .filter((candidate) => candidate.confidence >= RUNNER_UP_FLOOR)
      .slice(0, MAX_RUNNER_UPS)
      .map((candidate) => ({
        entityId: (practice[candidate.practiceIndex] as PracticePatient).id,
        confidence: roundConfidence(candidate.confidence),
      }));
    return {
      recordIndex,
      entityType: 'PATIENT' as const,
      entityId: (practice[chosen.practiceIndex] as PracticePatient).id,
      confidence: roundConfidence(chosen.confidence),
      fieldScores: fieldScores(pair.comparison),
      candidates: runnerUps,
    };
  });
}

/** Where HYBRID's look-alike rules put a pair: in the review band of these options. */
export function lookAlikeCap(options: ReconcileOptions): number {
  if (options.acceptAt !== undefined) return reviewCap(options.acceptAt, options.confidence);
  return reviewCap(options.confidence, Math.min(DEFAULT_REVIEW_FLOOR, options.confidence));
}

/** Matches free-form incoming rows (exports) to the practice's patients. */
export function reconcilePatients(practice: PracticePatient[], incoming: unknown[], options: ReconcileOptions): ReconcileResult {
  const practicePeople = preparePractice(practice);
  const incomingPeople = prepareIncoming(incoming, options.fieldMapping);
  const linkage = linkPeople(practicePeople, incomingPeople, {
    algorithm: options.algorithm, practiceIds: practice.map((patient) => patient.id), reviewCap: lookAlikeCap(options),
    learned: options.learned, band: { floor: Math.min(options.confidence, options.acceptAt ?? options.confidence), acceptAt: options.acceptAt ?? options.confidence },
  });
  const matches = patientMatches(practice, linkage, options);
  return summarise(matches, incoming.length, options.algorithm, { compared: linkage.compared, blocks: linkage.blocks });
}

/** Matches loyalty-redemption / point-of-sale rows to the practice's completed appointments. */
export function reconcileAppointments(practice: PracticeAppointment[], incoming: unknown[], options: ReconcileOptions): ReconcileResult {
  return reconcileAppointmentRows(practice, incoming, options);
}
