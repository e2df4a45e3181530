// APPOINTMENTS target: loyalty-redemption and point-of-sale rows -> the practice's completed
// appointments. A row matches an appointment when it is the same patient (the patient linkage,
// reused), the row's date falls in the posting window after the visit, the product or service
// agrees (brand or generic name), and the amount is plausible (the sale, or a reward worth a
// fraction of it).
import { assign, rankCandidates, roundConfidence, type RecordDecision } from './decide.js';
import { lookAlikeCap, type PracticeAppointment, type ReconcileOptions, type ReconcileResult, type ReconciliationMatch } from './engine.js';
import { fieldScores } from './features.js';
import { compileFieldMapping, recogniseRecord, type CanonicalRecord } from './fields.js';
import { dayNumber, parseAmountCents, parseDateReadings } from './normalise.js';
import { linkPeople, preparePractice, type PersonPair } from './people.js';
import { preparePerson, type PreparedPerson } from './prepare.js';
import { identifyService, serviceEvidence, type ServiceIdentity } from './services.js';

/** Statuses that count as a visit that happened (loyalty redemptions follow a treatment). */
const COMPLETED_STATUSES = new Set(['completed', 'complete', 'checkedout', 'checked_out', 'paid', 'done', 'fulfilled']);
/** Redemptions and settlements post up to this many days after the visit ... */
export const POSTING_WINDOW_DAYS = 14;
/** ... and a day early when time zones differ. */
const EARLY_TOLERANCE_DAYS = 1;
/** Patients considered per row: the person linkage's best few. */
const PATIENTS_PER_ROW = 3;
/** Patients below this person-level probability are not worth looking at. */
const MIN_PATIENT_LOG_ODDS = Math.log(0.05 / 0.95);
const MAX_RUNNER_UPS = 3;

interface IncomingRow {
  person: PreparedPerson;
  days: number[];
  service: ServiceIdentity;
  amountCents: number | null;
}

function amountCentsOf(record: CanonicalRecord): number | null {
  if (record.amountCents !== null) return record.amountCents;
  return parseAmountCents(record.amount);
}

function prepareRow(record: CanonicalRecord): IncomingRow | null {
  const person = preparePerson(record);
  if (!person.usable) return null;
  const days = parseDateReadings(record.serviceDate, 'recent')
    .map(dayNumber)
    .filter((day): day is number => day !== null);
  return { person, days, service: identifyService(record.service), amountCents: amountCentsOf(record) };
}

/** Log Bayes factor for the row being posted `lag` days after the visit (negative lag: before it). */
export function dateEvidence(lag: number): number | null {
  if (lag < -EARLY_TOLERANCE_DAYS || lag > POSTING_WINDOW_DAYS) return null;
  if (lag === 0) return 2;
  if (lag >= -1 && lag <= 3) return 1;
  return 0;
}

/** Log Bayes factor for the row's amount against the appointment's price. */
export function amountEvidence(amountCents: number | null, priceCents: number | null): { logBf: number; similarity: number } | null {
  if (amountCents === null || priceCents === null || priceCents <= 0) return null;
  const amount = Math.abs(amountCents);
  if (Math.abs(amount - priceCents) <= Math.max(100, priceCents * 0.01)) return { logBf: 1.5, similarity: 1 };
  const share = amount / priceCents;
  if (share >= 0.02 && share <= 0.5) return { logBf: 0.3, similarity: 0.6 }; // a reward: a fraction of the sale
  if (share > 1.5) return { logBf: -1, similarity: 0 };
  return { logBf: 0, similarity: 0.3 };
}

function startDay(appointment: PracticeAppointment): number | null {
  const reading = parseDateReadings(appointment.startTime, 'recent')[0];
  return reading === undefined ? null : dayNumber(reading);
}

interface AppointmentCandidate {
  appointmentIndex: number;
  logOdds: number;
  scores: Record<string, number>;
}

export function reconcileAppointmentRows(
  practice: PracticeAppointment[], incoming: unknown[], options: ReconcileOptions,
): ReconcileResult {
  const completed = practice
    .map((appointment, index) => ({ appointment, index }))
    .filter(({ appointment }) => COMPLETED_STATUSES.has(appointment.status.toLowerCase().replace(/[\s-]/g, '')));

  // One practice person per patient id; each patient's completed appointments.
  const patientIndexById = new Map<string, number>();
  const patients: PracticeAppointment['patient'][] = [];
  const appointmentsByPatient: number[][] = [];
  for (const { appointment, index } of completed) {
    let patientIndex = patientIndexById.get(appointment.patient.id);
    if (patientIndex === undefined) {
      patientIndex = patients.length;
      patientIndexById.set(appointment.patient.id, patientIndex);
      patients.push(appointment.patient);
      appointmentsByPatient.push([]);
    }
    (appointmentsByPatient[patientIndex] as number[]).push(index);
  }
  const days = practice.map(startDay);
  const services = practice.map((appointment) => identifyService(`${appointment.serviceName} ${appointment.serviceCategory ?? ''}`));

  const mapping = compileFieldMapping(options.fieldMapping);
  const rows = incoming.map((row) => {
    const record = recogniseRecord(row, mapping);
    return record === null ? null : prepareRow(record);
  });
  const linkage = linkPeople(preparePractice(patients), rows.map((row) => row?.person ?? null), {
    algorithm: options.algorithm, practiceIds: patients.map((patient) => patient.id), reviewCap: lookAlikeCap(options),
  });

  let compared = 0;
  const candidatesByRow: AppointmentCandidate[][] = rows.map((row, rowIndex) => {
    if (row === null) return [];
    const personPairs = [...(linkage.pairsByIncoming[rowIndex] ?? [])]
      .filter((pair) => pair.logOdds >= MIN_PATIENT_LOG_ODDS)
      .sort((a, b) => b.logOdds - a.logOdds)
      .slice(0, PATIENTS_PER_ROW);
    const candidates: AppointmentCandidate[] = [];
    for (const pair of personPairs) {
      for (const appointmentIndex of appointmentsByPatient[pair.practiceIndex] ?? []) {
        compared += 1;
        const candidate = scoreAppointment(row, pair, practice[appointmentIndex] as PracticeAppointment, days[appointmentIndex] ?? null, services[appointmentIndex] as ServiceIdentity);
        if (candidate !== null) candidates.push({ ...candidate, appointmentIndex });
      }
    }
    return candidates;
  });

  const decisions: RecordDecision[] = candidatesByRow.map((candidates, recordIndex) => ({
    recordIndex,
    ranked: rankCandidates(candidates.map((candidate) => ({
      practiceIndex: candidate.appointmentIndex, logOdds: candidate.logOdds,
      stableKey: (practice[candidate.appointmentIndex] as PracticeAppointment).id,
    }))),
    // The whole row (person, dates, service, amount), so two rows of one patient tie-break apart.
    stableKey: JSON.stringify(rows[recordIndex] ?? null),
  }));
  const matches: ReconciliationMatch[] = assign(decisions, options.confidence, options.oneToOne ?? false).map(({ recordIndex, choice }) => {
    const ranked = (decisions[recordIndex] as RecordDecision).ranked;
    const chosen = ranked[choice]!;
    const candidate = (candidatesByRow[recordIndex] ?? []).find((c) => c.appointmentIndex === chosen.practiceIndex)!;
    return {
      recordIndex,
      entityType: 'APPOINTMENT' as const,
      entityId: (practice[chosen.practiceIndex] as PracticeAppointment).id,
      confidence: roundConfidence(chosen.confidence),
      fieldScores: candidate.scores,
      candidates: ranked
        .filter((_, position) => position !== choice)
        .filter((other) => other.confidence >= 0.01)
        .slice(0, MAX_RUNNER_UPS)
        .map((other) => ({ entityId: (practice[other.practiceIndex] as PracticeAppointment).id, confidence: roundConfidence(other.confidence) })),
    };
  });
  const matched = new Set(matches.map((match) => match.recordIndex));
  const unmatched = incoming.map((_, i) => i).filter((i) => !matched.has(i));
  const mean = matches.length === 0 ? 0 : matches.reduce((sum, match) => sum + match.confidence, 0) / matches.length;
  return {
    matches, unmatched, confidence: roundConfidence(mean), algorithm: options.algorithm,
    stats: { compared: compared + linkage.compared, blocks: linkage.blocks },
  };
}

/**
 * Evidence that this row is this appointment: the patient's log-odds plus date, service and
 * amount. A row dated outside the posting window cannot be the appointment (null). A row with
 * no date is judged on the rest, and a missing service or amount contributes nothing.
 */
function scoreAppointment(
  row: IncomingRow, pair: PersonPair, appointment: PracticeAppointment, day: number | null, service: ServiceIdentity,
): Omit<AppointmentCandidate, 'appointmentIndex'> | null {
  const scores: Record<string, number> = {};
  for (const [field, score] of Object.entries(fieldScores(pair.comparison))) scores[field] = score;
  let logOdds = pair.logOdds;
  if (row.days.length > 0 && day !== null) {
    let best: number | null = null;
    for (const rowDay of row.days) {
      const evidence = dateEvidence(rowDay - day);
      if (evidence !== null && (best === null || evidence > best)) best = evidence;
    }
    if (best === null) return null;
    logOdds += best;
    scores.date = best >= 2 ? 1 : best >= 1 ? 0.8 : 0.5;
  } else {
    logOdds -= 1; // without a date, one of the patient's visits is a guess
  }
  const serviceMatch = serviceEvidence(row.service, service);
  if (row.service.words.length > 0) {
    logOdds += serviceMatch.logBf;
    scores.service = serviceMatch.similarity;
  }
  const amount = amountEvidence(row.amountCents, appointment.priceCents);
  if (amount !== null) {
    logOdds += amount.logBf;
    scores.amount = amount.similarity;
  }
  return { logOdds, scores };
}
