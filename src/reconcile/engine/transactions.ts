// TRANSACTIONS: reward redemptions (an Allē or Aspire export) against the sales they discounted
// (a point-of-sale export, or the practice's own completed appointments), or any two transaction
// lists. A redemption is one sale's when
//   - it posted 0 to 30 days after the sale (one-sided: a redemption never precedes its sale),
//   - its amount fits the sale: the sale's amount, a percent of it, or a fixed reward, within a
//     tolerance for fees and rounding,
//   - the product agrees, brand or generic ("Botox" = "onabotulinumtoxinA 20u", data/products.txt),
//   - and the patient agrees when both sides name one.
// Each part adds a log Bayes factor; the sum ranks a redemption's candidate sales, and a sale is
// handed to at most one redemption (greedy by confidence, see decide.ts). docs/reconciliation.md
// ("Transactions") gives the numbers and the figures they reach on the seeded generator.
//
// Blocking is a sweep over the sales sorted by date: a redemption looks only at the sales of its
// lag window, and within it only at those sharing a patient key (member id, email, phone, surname
// sound + initial, first-name sound + surname initial) or an amount the reward rules allow (found
// by binary search in each day's amount-sorted sales). Cost: O(n log n) to sort plus the candidates.
import {
  compareDates, compareEmails, compareGivenNames, compareIdentifiers, comparePhones, compareSurnames,
} from './compare.js';
import { assign, rankCandidates, roundConfidence, type RecordDecision } from './decide.js';
import type { Algorithm, Candidate, PracticeAppointment, ReconcileResult, ReconciliationMatch } from './engine.js';
import { compileFieldMapping, recogniseRecord, type CanonicalRecord } from './fields.js';
import { dayNumber, normaliseIdentifier, parseAmountCents, parseDateReadings } from './normalise.js';
import { phoneticCodes, preparePerson, type PreparedPerson } from './prepare.js';
import { identifyService, serviceEvidence, type ServiceIdentity } from './services.js';

export interface TransactionOptions {
  /** Recorded on the result; the transaction matcher has one scorer whatever the job's algorithm. */
  algorithm: Algorithm;
  /** Threshold 0.1..1: a redemption whose best sale is below it is reported unmatched. */
  confidence: number;
  /** Days a redemption may post after its sale: from minLagDays (default 0) to maxLagDays (default 30). */
  minLagDays?: number;
  maxLagDays?: number;
  /** Amount tolerance for fees and rounding: the larger of this many cents (default 100) ... */
  amountToleranceCents?: number;
  /** ... and this percent of the expected amount (default 2). */
  amountTolerancePercent?: number;
  /** Percent rewards the program gives (default 10, 15, 20, 25, 30, 40, 50). */
  rewardPercents?: number[];
  /** Fixed rewards the program gives, in cents (default $10, $15, $20, $25, $30, $40, $50, $60, $75, $100, $150, $200). */
  fixedRewardsCents?: number[];
  /** Redemptions one sale may carry (default 1; 0 = no limit). */
  maxRedemptionsPerSale?: number;
  /** Input key -> canonical field, for both lists. */
  fieldMapping?: Record<string, string>;
}

export const TRANSACTION_DEFAULTS = {
  minLagDays: 0,
  maxLagDays: 30,
  amountToleranceCents: 100,
  amountTolerancePercent: 2,
  rewardPercents: [10, 15, 20, 25, 30, 40, 50],
  fixedRewardsCents: [1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 7500, 10_000, 15_000, 20_000],
  maxRedemptionsPerSale: 1,
} as const;

export interface TransactionCandidate extends Candidate {
  evidence: string[];
}

export interface TransactionMatch extends ReconciliationMatch {
  evidence: string[];
  candidates: TransactionCandidate[];
}

export interface TransactionResult extends ReconcileResult {
  matches: TransactionMatch[];
  /** Sales (by position in the sales list) that no redemption was matched to. */
  unmatchedSales: number[];
  /** Each sale's entity id: see {@link saleEntityIds}. */
  saleIds: string[];
}

// ---------------------------------------------------------------- scoring constants (log Bayes factors)

/** Log odds before any evidence: a sale of the window is, a priori, unlikely to be the one. */
const PRIOR = -4;
/** Candidates kept per redemption after scoring (the rest cannot change the ranking). */
const KEEP_PER_REDEMPTION = 8;
/** Amount-only candidates looked at per redemption (nearest lag first): the patient keys are never capped. */
const MAX_AMOUNT_CANDIDATES = 24;
const MAX_RUNNER_UPS = 3;
const RUNNER_UP_FLOOR = 0.01;

interface Part {
  logBf: number;
  /** 0..1, shown as the pair's fieldScores. */
  similarity: number;
  text: string | null;
}

// ---------------------------------------------------------------- preparation

/** What the patient comparison needs of a prepared person (the rest is let go: 400,000 rows add up). */
type TransactionPerson = Pick<PreparedPerson, 'given' | 'surname' | 'otherSurnames' | 'dob' | 'emails' | 'phones' | 'memberIds' | 'givenGroups'>;

interface PreparedTransaction {
  days: number[];
  cents: number | null;
  product: ServiceIdentity;
  person: TransactionPerson | null;
  keys: string[];
  reference: string | null;
}

function centsOf(record: CanonicalRecord): number | null {
  const cents = record.amountCents ?? parseAmountCents(record.amount);
  return cents === null ? null : Math.abs(cents);
}

function hasPerson(person: PreparedPerson): boolean {
  return person.given !== null || person.surname !== null || person.memberIds.length > 0 || person.emails.length > 0 || person.phones.length > 0;
}

/** Patient blocking keys: tolerant of typos (sounds) and of one changed name (two keys). */
function personKeys(person: TransactionPerson): string[] {
  const keys: string[] = [];
  for (const id of person.memberIds) keys.push(`m:${id}`);
  for (const email of person.emails) keys.push(`e:${email.canonical}`);
  for (const phone of person.phones) keys.push(`p:${phone.last7}`);
  const surname = person.surname?.joined ?? '';
  const given = person.given?.tokens[0] ?? '';
  if (surname !== '') {
    for (const code of phoneticCodes(surname)) keys.push(`s:${code}:${given.charAt(0)}`);
  }
  if (given.length > 1 && surname !== '') {
    for (const code of phoneticCodes(given)) keys.push(`g:${code}:${surname.charAt(0)}`);
    // "Liz Wood" and "Wood, Elizabeth": a nickname changes the initial, not the group.
    for (const group of person.givenGroups) for (const code of phoneticCodes(surname)) keys.push(`k:${group}:${code}`);
  }
  return [...new Set(keys)];
}

type DateOrder = 'month-first' | 'day-first' | 'unknown';

const NUMERIC_DATE = /^\s*(\d{1,2})[-/. ](\d{1,2})[-/. ]\d{2,4}/;

/**
 * A file writes all its dates one way: when some of them can only be read month-first (05/28)
 * and none only day-first (28/05), 04/01 in that file is April 1, not also January 4 (and the
 * other way round). Mixed or undecided files keep both readings.
 */
export function dateOrderOf(values: readonly (string | null)[]): DateOrder {
  let monthFirst = 0;
  let dayFirst = 0;
  for (const value of values) {
    const parts = value === null ? null : NUMERIC_DATE.exec(value);
    if (parts === null) continue;
    if (Number(parts[1]) > 12) dayFirst += 1;
    else if (Number(parts[2]) > 12) monthFirst += 1;
  }
  if (monthFirst > 0 && dayFirst === 0) return 'month-first';
  if (dayFirst > 0 && monthFirst === 0) return 'day-first';
  return 'unknown';
}

function dayReadings(value: string | null, order: DateOrder): number[] {
  let readings = parseDateReadings(value, 'recent');
  // parseDateReadings lists the month-first reading first.
  if (readings.length === 2 && value !== null && NUMERIC_DATE.test(value)) {
    if (order === 'month-first') readings = [readings[0]!];
    else if (order === 'day-first') readings = [readings[1]!];
  }
  return [...new Set(readings.map(dayNumber).filter((day): day is number => day !== null))];
}

function prepareTransaction(record: CanonicalRecord | null, order: DateOrder): PreparedTransaction | null {
  if (record === null) return null;
  const days = dayReadings(record.serviceDate, order);
  const person = preparePerson(record);
  const named = hasPerson(person);
  const { given, surname, otherSurnames, dob, emails, phones, memberIds, givenGroups } = person;
  return {
    days,
    cents: centsOf(record),
    product: identifyService(record.service),
    person: named ? { given, surname, otherSurnames, dob, emails, phones, memberIds, givenGroups } : null,
    keys: named ? personKeys(person) : [],
    reference: normaliseIdentifier(record.transactionId),
  };
}

function prepareAll(rows: readonly unknown[], fieldMapping: Record<string, string> | undefined): (PreparedTransaction | null)[] {
  const mapping = compileFieldMapping(fieldMapping);
  const records = rows.map((row) => recogniseRecord(row, mapping));
  const order = dateOrderOf(records.map((record) => record?.serviceDate ?? null));
  return records.map((record) => prepareTransaction(record, order));
}

/**
 * The id a sale is known by in the results: its transaction id (invoice or ticket number) when
 * every sale has one and no two share it, otherwise `row:N` (its 0-based data row) for all, so
 * that an id always names exactly one sale.
 */
export function saleEntityIds(rows: readonly unknown[], fieldMapping?: Record<string, string>): string[] {
  const mapping = compileFieldMapping(fieldMapping);
  const ids = rows.map((row) => recogniseRecord(row, mapping)?.transactionId?.trim() ?? '');
  const unique = ids.every((id) => id !== '' && id.length <= 200) && new Set(ids).size === ids.length;
  return unique ? ids : ids.map((_, index) => `row:${index}`);
}

// ---------------------------------------------------------------- evidence parts

/** "$1,250.00" (toLocaleString is far too slow for a million pairs). */
export function dollars(cents: number): string {
  const [whole, fraction] = (Math.round(cents) / 100).toFixed(2).split('.');
  return `$${whole!.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${fraction}`;
}

interface Settings {
  minLag: number;
  maxLag: number;
  tolCents: number;
  tolShare: number;
  percents: readonly number[];
  fixed: readonly number[];
  capacity: number;
}

function settingsOf(options: TransactionOptions): Settings {
  const minLag = options.minLagDays ?? TRANSACTION_DEFAULTS.minLagDays;
  const maxLag = Math.max(minLag, options.maxLagDays ?? TRANSACTION_DEFAULTS.maxLagDays);
  const perSale = options.maxRedemptionsPerSale ?? TRANSACTION_DEFAULTS.maxRedemptionsPerSale;
  return {
    minLag,
    maxLag,
    tolCents: options.amountToleranceCents ?? TRANSACTION_DEFAULTS.amountToleranceCents,
    tolShare: (options.amountTolerancePercent ?? TRANSACTION_DEFAULTS.amountTolerancePercent) / 100,
    percents: [...(options.rewardPercents ?? TRANSACTION_DEFAULTS.rewardPercents)].sort((a, b) => a - b),
    fixed: options.fixedRewardsCents ?? TRANSACTION_DEFAULTS.fixedRewardsCents,
    capacity: perSale <= 0 ? Number.POSITIVE_INFINITY : perSale,
  };
}

const QUIET = new Map<number, Part>();

/** A part without words, shared: the first pass scores millions of pairs and must not allocate for each. */
function quiet(logBf: number): Part {
  let part = QUIET.get(logBf);
  if (part === undefined) QUIET.set(logBf, (part = { logBf, similarity: 0, text: '' }));
  return part;
}

const tolerance = (settings: Settings, expected: number) => Math.max(settings.tolCents, settings.tolShare * expected);

/** A round reward ($20.00, $50.00: the program's fixed rewards), allowing for a fee. */
function isFixedReward(cents: number, settings: Settings): boolean {
  return settings.fixed.some((fixed) => Math.abs(cents - fixed) <= tolerance(settings, fixed));
}

/** How the redemption's amount fits the sale's. */
export function amountPart(redeemed: number | null, sale: number | null, settings: Settings, describe = true): Part {
  if (redeemed === null || sale === null) return { logBf: 0, similarity: 0, text: redeemed === null ? null : 'amount missing on the sale' };
  if (Math.abs(redeemed - sale) <= tolerance(settings, sale)) {
    if (!describe) return quiet(3);
    return { logBf: 3, similarity: 1, text: redeemed === sale ? `amount equals sale ${dollars(sale)}` : `amount within ${dollars(Math.abs(redeemed - sale))} of sale ${dollars(sale)}` };
  }
  // A round reward ($20.00, $50.00) is what the program gives whatever the sale: that it also
  // happens to be some percent of a sale says little.
  const fixedReward = isFixedReward(redeemed, settings);
  if (sale > 0) {
    let best: { percent: number; off: number } | null = null;
    for (const percent of settings.percents) {
      const expected = (sale * percent) / 100;
      const off = Math.abs(redeemed - expected);
      if (off <= tolerance(settings, expected) && (best === null || off < best.off)) best = { percent, off };
    }
    if (best !== null && !fixedReward) return describe ? { logBf: 3, similarity: 1 - best.off / Math.max(1, redeemed), text: `amount ${best.percent}% of sale ${dollars(sale)}` } : quiet(3);
  }
  if (redeemed < sale) {
    if (fixedReward) {
      return describe ? { logBf: 0.5, similarity: 0.6, text: `fixed ${dollars(redeemed)} reward on sale ${dollars(sale)}` } : quiet(0.5);
    }
    return describe ? { logBf: -1.5, similarity: 0.3, text: `amount ${((100 * redeemed) / sale).toFixed(1)}% of sale ${dollars(sale)}, no reward rule` } : quiet(-1.5);
  }
  return describe ? { logBf: -6, similarity: 0, text: `amount ${dollars(redeemed)} exceeds sale ${dollars(sale)}` } : quiet(-6);
}

/** The redemption posted `lag` days after the sale; null outside the window (before the sale included). */
export function lagPart(lag: number, settings: Settings, describe = true): Part | null {
  if (lag < settings.minLag || lag > settings.maxLag) return null;
  if (!describe) return quiet(lagLogBf(lag));
  const text = lag === 0 ? 'posted the same day as the sale' : `posted ${lag} day${lag === 1 ? '' : 's'} after sale`;
  return { logBf: lagLogBf(lag), similarity: lag <= 2 ? 1 : lag <= 7 ? 0.8 : lag <= 14 ? 0.6 : 0.4, text };
}

/** Most redemptions post within days of the sale; the window's tail is allowed but weaker. */
const lagLogBf = (lag: number) => (lag <= 2 ? 1 : lag <= 7 ? 0.5 : lag <= 14 ? 0 : -0.5);

const productName = (identity: ServiceIdentity) => identity.found ?? identity.brand ?? identity.words.join(' ');

export function productPart(redeemed: ServiceIdentity, sold: ServiceIdentity, describe = true): Part {
  if (redeemed.words.length === 0 || sold.words.length === 0) {
    return { logBf: 0, similarity: 0, text: redeemed.words.length === 0 ? null : 'product missing on the sale' };
  }
  const { logBf, similarity } = serviceEvidence(redeemed, sold);
  if (!describe) return quiet(logBf);
  let text: string;
  if (redeemed.product !== null && redeemed.product === sold.product) {
    const a = productName(redeemed);
    const b = productName(sold);
    text = a.toLowerCase() === b.toLowerCase() ? `product ${a} equal` : `product ${a} = ${b}`;
  } else if (logBf >= 1.5) text = `product ${redeemed.kind} class matches ${productName(redeemed.product === null ? sold : redeemed)}`;
  else if (logBf > 0 && redeemed.kind !== null && redeemed.kind === sold.kind) text = `products ${productName(redeemed)} / ${productName(sold)} both ${redeemed.kind}`;
  else if (logBf > 0) text = 'product shares a word';
  else if (logBf < 0) text = `product differs: ${productName(redeemed)} vs ${productName(sold)}`;
  else text = 'product not recognised';
  return { logBf, similarity, text };
}

const NO_PATIENT: Part = { logBf: 0, similarity: 0, text: null };
const UNNAMED_SALE: Part = { logBf: 0, similarity: 0, text: 'patient not named on the sale' };
const OTHER_PATIENT: Part = { logBf: -4, similarity: 0, text: 'patient differs' };

/**
 * Whether both sides name the same patient. `sharesKey`: the pair shares a patient blocking key;
 * two named sides that share none (no name sound, member id, email or phone in common) are taken
 * as different patients without comparing further.
 */
export function patientPart(a: TransactionPerson | null, b: TransactionPerson | null, sharesKey: boolean): Part {
  if (a === null || b === null) return a === null ? NO_PATIENT : UNNAMED_SALE;
  if (!sharesKey) return OTHER_PATIENT;
  // Name weights are those of a practice with thousands of clients: two different clients agree
  // on a whole name about once in a thousand pairs (e^7), on a surname once in fifty (e^4).
  const parts: string[] = [];
  let logBf = 0;
  if (compareIdentifiers(a.memberIds, b.memberIds).level === 0) { logBf += 6; parts.push('member id equal'); }
  const surname = compareSurnames(a.surname, b.surname, b.otherSurnames).level;
  if (surname >= 0) {
    logBf += [4, 2.5, 0.5, -3][surname] ?? 0;
    parts.push(['surname equal', 'surname typo', 'surname close', 'surname differs'][surname] ?? '');
  }
  const given = compareGivenNames(a.given, b.given).level;
  if (given >= 0) {
    logBf += [3, 2.5, 1.5, 0, -2.5][given] ?? 0;
    parts.push(['first name equal', 'first name nickname or middle name', 'first name typo', 'first name close', 'first name differs'][given] ?? '');
  }
  if (compareEmails(a.emails, b.emails).level === 0) { logBf += 3; parts.push('email equal'); }
  if (comparePhones(a.phones, b.phones).level === 0) { logBf += 3; parts.push('phone equal'); }
  const dob = compareDates(a.dob, b.dob).level;
  if (dob === 0) { logBf += 2; parts.push('DOB equal'); } else if (dob === 3) { logBf -= 2; parts.push('DOB differs'); }
  const verdict = logBf >= 3 ? 'same patient' : logBf <= -2 ? 'patient differs' : 'patient unclear';
  return { logBf, similarity: logBf >= 3 ? 1 : logBf <= -2 ? 0 : 0.5, text: parts.length === 0 ? verdict : `${verdict} (${parts.join(', ')})` };
}

// ---------------------------------------------------------------- the sales index

/** Sales by date, by patient key and by (date, amount): what the sweep searches. */
class SalesIndex {
  /** Entries (sale, day) sorted by day; a sale with an ambiguous date has one entry per reading. */
  readonly entrySale: Int32Array;
  readonly entryDay: Int32Array;
  /** Patient key -> entry positions in day order. */
  readonly byKey = new Map<string, number[]>();
  /** Day -> that day's entries sorted by amount (cents), for the reward rules' binary search. */
  readonly byDayAmount = new Map<number, { cents: Float64Array; sales: Int32Array }>();
  /** The same for the sales that name no patient: all a named redemption needs beside its patient keys. */
  readonly byDayAmountUnnamed = new Map<number, { cents: Float64Array; sales: Int32Array }>();

  constructor(sales: readonly (PreparedTransaction | null)[]) {
    const entries: [number, number][] = [];
    sales.forEach((sale, index) => {
      if (sale !== null) for (const day of sale.days) entries.push([index, day]);
    });
    entries.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    this.entrySale = Int32Array.from(entries, (entry) => entry[0]);
    this.entryDay = Int32Array.from(entries, (entry) => entry[1]);
    const perDay = new Map<number, number[]>();
    entries.forEach(([saleIndex, day], position) => {
      const sale = sales[saleIndex]!;
      const productKeys = sale.product.product === null ? [] : sale.person === null ? [`x:${sale.product.product}`, `u:${sale.product.product}`] : [`x:${sale.product.product}`];
      for (const key of productKeys.length === 0 ? sale.keys : [...sale.keys, ...productKeys]) {
        let list = this.byKey.get(key);
        if (list === undefined) this.byKey.set(key, (list = []));
        list.push(position);
      }
      if (sale.cents !== null) {
        let list = perDay.get(day);
        if (list === undefined) perDay.set(day, (list = []));
        list.push(saleIndex);
      }
    });
    // The sales' own keys are in the index now.
    for (const sale of sales) if (sale !== null) sale.keys = [];
    for (const [day, list] of perDay) {
      list.sort((a, b) => sales[a]!.cents! - sales[b]!.cents! || a - b);
      this.byDayAmount.set(day, { cents: Float64Array.from(list, (i) => sales[i]!.cents!), sales: Int32Array.from(list) });
      const unnamed = list.filter((i) => sales[i]!.person === null);
      if (unnamed.length > 0) this.byDayAmountUnnamed.set(day, { cents: Float64Array.from(unnamed, (i) => sales[i]!.cents!), sales: Int32Array.from(unnamed) });
    }
  }

  /** First position in `positions` (entry positions in day order) whose day is >= day. */
  lowerBoundByDay(positions: readonly number[], day: number): number {
    let lo = 0;
    let hi = positions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entryDay[positions[mid]!]! < day) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function lowerBound(values: Float64Array, value: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Sale amounts (cents ranges) a redemption of `cents` can come from: the sale itself, or a percent of it. */
function amountTargets(cents: number, settings: Settings): [number, number][] {
  const tol = tolerance(settings, cents);
  const ranges: [number, number][] = [[cents - tol, cents + tol]];
  for (const percent of settings.percents) {
    const share = percent / 100;
    ranges.push([(cents - tol) / share, (cents + tol) / share]);
  }
  return ranges;
}

// ---------------------------------------------------------------- matching

interface ScoredSale {
  sale: number;
  logOdds: number;
  /** The pair shares a patient key (see patientPart). */
  keyed: boolean;
}

interface DescribedPair {
  logOdds: number;
  scores: Record<string, number>;
  evidence: string[];
}

/** The smallest lag in the window over both sides' date readings (a shorter lag is never weaker evidence), or null. */
function bestLagDays(redemption: PreparedTransaction, sale: PreparedTransaction, settings: Settings): number | null {
  let best: number | null = null;
  for (const redeemedDay of redemption.days) {
    for (const soldDay of sale.days) {
      const lag = redeemedDay - soldDay;
      if (lag >= settings.minLag && lag <= settings.maxLag && (best === null || lag < best)) best = lag;
    }
  }
  return best;
}

const sameTransactionId = (a: PreparedTransaction, b: PreparedTransaction) => a.reference !== null && a.reference === b.reference;

/** The pair's log odds, or null when the dates rule it out. The first pass: no words, no allocation. */
function pairLogOdds(redemption: PreparedTransaction, sale: PreparedTransaction, sharesKey: boolean, settings: Settings): number | null {
  const lag = bestLagDays(redemption, sale, settings);
  if (lag === null) return null;
  return PRIOR + lagLogBf(lag) + amountPart(redemption.cents, sale.cents, settings, false).logBf
    + productPart(redemption.product, sale.product, false).logBf + patientPart(redemption.person, sale.person, sharesKey).logBf
    + (sameTransactionId(redemption, sale) ? 8 : 0);
}

/** The pair's log odds with its evidence in words: only for the few candidates that are shown. */
function describePair(redemption: PreparedTransaction, sale: PreparedTransaction, sharesKey: boolean, settings: Settings): DescribedPair {
  const lag = lagPart(bestLagDays(redemption, sale, settings)!, settings)!;
  const parts: [string, Part][] = [
    ['amount', amountPart(redemption.cents, sale.cents, settings)],
    ['date', lag],
    ['product', productPart(redemption.product, sale.product)],
    ['patient', patientPart(redemption.person, sale.person, sharesKey)],
  ];
  let logOdds = PRIOR;
  const evidence: string[] = [];
  const scores: Record<string, number> = {};
  if (sameTransactionId(redemption, sale)) {
    logOdds += 8;
    evidence.push('same transaction id');
  }
  for (const [field, part] of parts) {
    logOdds += part.logBf;
    if (part.text !== null) {
      evidence.push(part.text);
      scores[field] = Math.round(part.similarity * 1000) / 1000;
    }
  }
  return { logOdds, scores, evidence };
}

/** Candidate sales of one redemption, scored, best first (at most KEEP_PER_REDEMPTION). */
function candidatesOf(
  redemption: PreparedTransaction, sales: readonly (PreparedTransaction | null)[], index: SalesIndex, settings: Settings,
  seen: Int32Array, keyed: Int32Array, stamp: number,
): { scored: ScoredSale[]; compared: number } {
  const found: number[] = [];
  // Both sides name a patient and share no patient key: "patient differs" (-4) can neither win
  // nor much change a winner's confidence, so such sales are not scored at all: a named
  // redemption searches the amounts and products of the sales that name no one. The patient keys
  // are looked up first, for every reading.
  const named = redemption.person !== null;
  const amounts = named ? index.byDayAmountUnnamed : index.byDayAmount;
  const productPrefix = named ? 'u' : 'x';
  for (const day of redemption.days) {
    for (const key of redemption.keys) {
      const positions = index.byKey.get(key);
      if (positions === undefined) continue;
      for (let p = index.lowerBoundByDay(positions, day - settings.maxLag); p < positions.length; p += 1) {
        const position = positions[p]!;
        if (index.entryDay[position]! > day - settings.minLag) break;
        const sale = index.entrySale[position]!;
        keyed[sale] = stamp;
        if (seen[sale] !== stamp) { seen[sale] = stamp; found.push(sale); }
      }
    }
  }
  for (const day of redemption.days) {
    const from = day - settings.maxLag;
    const to = day - settings.minLag;
    let taken = 0;
    const fixedReward = redemption.cents !== null && isFixedReward(redemption.cents, settings);
    if (redemption.cents !== null) {
      // A round reward fits any sale; only "the sale's own amount" narrows the search.
      const ranges = fixedReward ? amountTargets(redemption.cents, settings).slice(0, 1) : amountTargets(redemption.cents, settings);
      // Nearest lag first, so the cap keeps the likelier sales.
      for (let saleDay = to; saleDay >= from && taken < MAX_AMOUNT_CANDIDATES; saleDay -= 1) {
        const bucket = amounts.get(saleDay);
        if (bucket === undefined) continue;
        for (const [low, high] of ranges) {
          for (let i = lowerBound(bucket.cents, low); i < bucket.cents.length && bucket.cents[i]! <= high; i += 1) {
            const sale = bucket.sales[i]!;
            if (seen[sale] !== stamp) { seen[sale] = stamp; found.push(sale); taken += 1; }
          }
        }
      }
    }
    // A fixed reward names no amount: the same product in the window, nearest lag first.
    const sameProduct = redemption.product.product === null || !(fixedReward || redemption.cents === null) ? undefined : index.byKey.get(`${productPrefix}:${redemption.product.product}`);
    if (sameProduct !== undefined) {
      const first = index.lowerBoundByDay(sameProduct, from);
      for (let p = index.lowerBoundByDay(sameProduct, to + 1) - 1; p >= first && taken < MAX_AMOUNT_CANDIDATES; p -= 1) {
        const sale = index.entrySale[sameProduct[p]!]!;
        if (seen[sale] !== stamp) { seen[sale] = stamp; found.push(sale); taken += 1; }
      }
    }
  }
  const scored: ScoredSale[] = [];
  for (const sale of found) {
    const sharesKey = keyed[sale] === stamp;
    const logOdds = pairLogOdds(redemption, sales[sale]!, sharesKey, settings);
    if (logOdds !== null) scored.push({ sale, logOdds, keyed: sharesKey });
  }
  scored.sort((a, b) => b.logOdds - a.logOdds || a.sale - b.sale);
  return { scored: scored.slice(0, KEEP_PER_REDEMPTION), compared: found.length };
}

/** Matches redemptions to sales: at most one sale per redemption, and (by default) one redemption per sale. */
export function reconcileTransactions(redemptions: readonly unknown[], salesRows: readonly unknown[], options: TransactionOptions, saleIds?: readonly string[]): TransactionResult {
  const settings = settingsOf(options);
  const incoming = prepareAll(redemptions, options.fieldMapping);
  const sales = prepareAll(salesRows, options.fieldMapping);
  const ids = saleIds ?? saleEntityIds(salesRows, options.fieldMapping);
  const index = new SalesIndex(sales);
  const seen = new Int32Array(sales.length);
  const keyed = new Int32Array(sales.length);
  let compared = 0;
  const scoredByRow: ScoredSale[][] = incoming.map((redemption, row) => {
    if (redemption === null || redemption.days.length === 0) return [];
    const { scored, compared: looked } = candidatesOf(redemption, sales, index, settings, seen, keyed, row + 1);
    compared += looked;
    return scored;
  });

  // Ties go to the earlier redemption, then to the earlier sale: the files' own order, which is
  // the order a billing manager reads them in (positions padded so they compare as numbers).
  const positionKey = (position: number) => String(position).padStart(10, '0');
  const decisions: RecordDecision[] = scoredByRow.map((scored, recordIndex) => ({
    recordIndex,
    stableKey: positionKey(recordIndex),
    ranked: rankCandidates(scored.map((candidate) => ({ practiceIndex: candidate.sale, logOdds: candidate.logOdds, stableKey: positionKey(candidate.sale) }))),
  }));
  const assignments = assign(decisions, options.confidence, true, settings.capacity);
  const evidenceOf = (row: number, sale: number) => {
    const candidate = scoredByRow[row]!.find((c) => c.sale === sale)!;
    return describePair(incoming[row]!, sales[sale]!, candidate.keyed, settings);
  };
  const matches: TransactionMatch[] = assignments.map(({ recordIndex, choice }) => {
    const ranked = decisions[recordIndex]!.ranked;
    const chosen = ranked[choice]!;
    const pair = evidenceOf(recordIndex, chosen.practiceIndex);
    return {
      recordIndex,
      entityType: 'SALE' as const,
      entityId: ids[chosen.practiceIndex]!,
      confidence: roundConfidence(chosen.confidence),
      fieldScores: pair.scores,
      evidence: pair.evidence,
      candidates: ranked
        .filter((candidate, position) => position !== choice && candidate.confidence >= RUNNER_UP_FLOOR)
        .slice(0, MAX_RUNNER_UPS)
        .map((candidate) => ({
          entityId: ids[candidate.practiceIndex]!,
          confidence: roundConfidence(candidate.confidence),
          evidence: evidenceOf(recordIndex, candidate.practiceIndex).evidence,
        })),
    };
  });
  const matchedSales = new Set(assignments.map(({ recordIndex, choice }) => decisions[recordIndex]!.ranked[choice]!.practiceIndex));
  const matchedRows = new Set(matches.map((match) => match.recordIndex));
  const mean = matches.length === 0 ? 0 : matches.reduce((sum, match) => sum + match.confidence, 0) / matches.length;
  return {
    matches,
    unmatched: incoming.map((_, i) => i).filter((i) => !matchedRows.has(i)),
    unmatchedSales: sales.map((_, i) => i).filter((i) => !matchedSales.has(i)),
    saleIds: [...ids],
    confidence: roundConfidence(mean),
    algorithm: options.algorithm,
    stats: { compared, blocks: index.byKey.size + index.byDayAmount.size },
  };
}

/**
 * The practice's own sales, when no sales file is sent: each completed appointment is a sale of
 * its service at the price it was charged, on its day, to its patient, named by its id.
 */
export function appointmentSales(appointments: readonly PracticeAppointment[]): Record<string, unknown>[] {
  return appointments.map((appointment) => ({
    'Transaction ID': appointment.id,
    Date: appointment.startTime.slice(0, 10),
    Service: appointment.serviceCategory ? `${appointment.serviceName} (${appointment.serviceCategory})` : appointment.serviceName,
    priceCents: appointment.priceCents,
    'First Name': appointment.patient.firstName,
    'Last Name': appointment.patient.lastName,
    'Date of Birth': appointment.patient.dateOfBirth,
    Email: appointment.patient.email,
    Phone: appointment.patient.phoneNumber,
    externalIds: appointment.patient.externalIds ?? {},
  }));
}
