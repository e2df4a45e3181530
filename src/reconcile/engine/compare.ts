// Graded field comparators. Each returns a discrete agreement level (0 = strongest agreement,
// the last level = disagreement, MISSING when either side has no value) plus a similarity in
// [0, 1] for the fuzzy scorer and for the fieldScores shown to staff.
import jaroWinkler from 'jaro-winkler';
import { distance as levenshtein } from 'fastest-levenshtein';
import { areNicknames } from './nicknames.js';
import type { NormalisedEmail, NormalisedPhone } from './normalise.js';

export const MISSING = -1;

export interface Comparison {
  level: number;
  similarity: number;
}

const MISSING_COMPARISON: Comparison = { level: MISSING, similarity: 0 };

/** Jaro-Winkler similarity; thresholds below follow the common 0.92 / 0.80 bands (Splink, FEBRL). */
export function jw(a: string, b: string): number {
  if (a === b) return 1;
  if (a.length === 0 || b.length === 0) return 0;
  return jaroWinkler(a, b);
}

/** True when b is a with exactly one pair of adjacent characters swapped ("1984" / "1948"). */
export function isAdjacentTransposition(a: string, b: string): boolean {
  if (a.length !== b.length || a === b) return false;
  let first = -1;
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] !== b[i]) {
      if (first === -1) first = i;
      else if (i !== first + 1) return false;
    }
  }
  const second = first + 1;
  return first >= 0 && a[first] === b[second] && a[second] === b[first] && a.slice(second + 1) === b.slice(second + 1);
}

/** Number of positions that differ between two strings of equal length (Infinity when lengths differ). */
export function hamming(a: string, b: string): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let differences = 0;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) differences += 1;
  return differences;
}

/** One typo apart: one substitution, insertion, deletion, or adjacent transposition. */
export function isOneEditApart(a: string, b: string): boolean {
  if (a === b) return false;
  if (Math.abs(a.length - b.length) > 1) return false;
  return isAdjacentTransposition(a, b) || levenshtein(a, b) === 1;
}

// ---------------------------------------------------------------- names

/** A person's name on one side of a comparison, folded and tokenised. */
export interface NameValue {
  /** Tokens joined without spaces: "mc donald" and "mcdonald" compare equal. */
  joined: string;
  tokens: readonly string[];
}

function bestTokenSimilarity(a: NameValue, b: NameValue): number {
  let best = 0;
  for (const x of a.tokens) {
    for (const y of b.tokens) {
      const similarity = jw(x, y);
      if (similarity > best) best = similarity;
    }
  }
  return best;
}

function sharesToken(a: NameValue, b: NameValue): boolean {
  return a.tokens.some((token) => token.length > 1 && b.tokens.includes(token));
}

/**
 * A clipped short form: the shorter name (3+ letters) begins the longer one, which has at least two
 * more letters ("Dani" / "Daniela", "Vale" / "Valentina", "Meena" / "Meenakshi"). Pairs one letter
 * apart (Paul / Paula, Eric / Erica) are left to the string comparators: they are often two people.
 */
export function isClippedForm(a: string, b: string): boolean {
  const [shorter, longer] = a.length <= b.length ? [a, b] : [b, a];
  return shorter.length >= 3 && longer.length >= shorter.length + 2 && longer.startsWith(shorter);
}

/** Both names have words after an equal first word, and none of those words agree (same, initial, typo, nickname). */
function furtherNamesConflict(a: NameValue, b: NameValue): boolean {
  const restA = a.tokens.slice(1);
  const restB = b.tokens.slice(1);
  if (restA.length === 0 || restB.length === 0) return false;
  return !restA.some((x) => restB.some((y) => x === y
    || ((x.length === 1 || y.length === 1) && x[0] === y[0])
    || jw(x, y) >= 0.8
    || areNicknames(x, y)));
}

/** Given-name levels: 0 exact, 1 nickname / extra middle name, 2 typo (JW >= 0.92), 3 close (JW >= 0.80) or initial only, 4 different. */
export const GIVEN_LEVELS = 5;

export function compareGivenNames(a: NameValue | null, b: NameValue | null): Comparison {
  if (a === null || b === null || a.joined === '' || b.joined === '') return MISSING_COMPARISON;
  if (a.joined === b.joined) return { level: 0, similarity: 1 };
  const firstA = a.tokens[0] ?? '';
  const firstB = b.tokens[0] ?? '';
  if (firstA === firstB && firstA.length > 1) {
    // "Thi Lan" / "Thi Thao", "Mary Kate" / "Mary Ashley": the same first word but two different
    // further names is two people, not one person's extra middle name.
    if (furtherNamesConflict(a, b)) return { level: 3, similarity: 0.6 };
    return { level: 1, similarity: 0.95 };
  }
  if (a.tokens.some((x) => b.tokens.some((y) => areNicknames(x, y)))) return { level: 1, similarity: 0.9 };
  if (sharesToken(a, b)) return { level: 2, similarity: 0.88 };
  if (isClippedForm(firstA, firstB)) return { level: 2, similarity: Math.max(jw(a.joined, b.joined), 0.88) };
  const similarity = Math.max(jw(a.joined, b.joined), bestTokenSimilarity(a, b) * 0.98);
  if (similarity >= 0.92) return { level: 2, similarity };
  // "Zeo" for "Zoe": two letters swapped is a typo, however low Jaro-Winkler scores a short name.
  if (firstA[0] === firstB[0] && isAdjacentTransposition(a.joined, b.joined)) return { level: 2, similarity: Math.max(similarity, 0.9) };
  // "J" against "Jennifer": an initial agrees but carries little evidence.
  const initialOnly = (firstA.length === 1 || firstB.length === 1) && firstA[0] === firstB[0];
  if (similarity >= 0.8 || initialOnly) return { level: 3, similarity: Math.max(similarity, 0.6) };
  return { level: 4, similarity };
}

/** Surname levels: 0 exact, 1 typo (JW >= 0.92) or shared part of a double-barrelled name, 2 close (JW >= 0.80), 3 different. */
export const SURNAME_LEVELS = 4;

export function compareSurnames(a: NameValue | null, b: NameValue | null, alternativesB: readonly NameValue[] = []): Comparison {
  if (a === null || b === null || a.joined === '' || b.joined === '') return MISSING_COMPARISON;
  let best = compareOneSurname(a, b);
  for (const alternative of alternativesB) {
    if (best.level === 0) break;
    const other = compareOneSurname(a, alternative);
    if (other.level < best.level) best = other;
  }
  return best;
}

function compareOneSurname(a: NameValue, b: NameValue): Comparison {
  if (a.joined === b.joined) return { level: 0, similarity: 1 };
  const similarity = jw(a.joined, b.joined);
  if (similarity >= 0.92) return { level: 1, similarity };
  if (sharesToken(a, b)) return { level: 1, similarity: Math.max(similarity, 0.9) };
  if (similarity >= 0.8) return { level: 2, similarity };
  return { level: 3, similarity };
}

// ---------------------------------------------------------------- dates

/** Date-of-birth levels: 0 same date, 1 day/month swapped or one typo, 2 two of year/month/day agree, 3 different. */
export const DOB_LEVELS = 4;

function compareOneDate(a: string, b: string): Comparison {
  if (a === b) return { level: 0, similarity: 1 };
  const yearA = a.slice(0, 4);
  const yearB = b.slice(0, 4);
  const monthA = a.slice(4, 6);
  const monthB = b.slice(4, 6);
  const dayA = a.slice(6, 8);
  const dayB = b.slice(6, 8);
  if (yearA === yearB && monthA === dayB && dayA === monthB) return { level: 1, similarity: 0.85 };
  if (hamming(a, b) === 1 || isAdjacentTransposition(a, b)) return { level: 1, similarity: 0.8 };
  const agreeing = (yearA === yearB ? 1 : 0) + (monthA === monthB ? 1 : 0) + (dayA === dayB ? 1 : 0);
  if (agreeing >= 2) return { level: 2, similarity: 0.5 };
  return { level: 3, similarity: 0 };
}

/** Compares every reading of both dates (an ambiguous "03/04/1985" has two) and keeps the best. */
export function compareDates(a: readonly string[], b: readonly string[]): Comparison {
  if (a.length === 0 || b.length === 0) return MISSING_COMPARISON;
  let best: Comparison = { level: DOB_LEVELS - 1, similarity: 0 };
  for (const x of a) {
    for (const y of b) {
      const comparison = compareOneDate(x, y);
      if (comparison.level < best.level) best = comparison;
      if (best.level === 0) return best;
    }
  }
  return best;
}

// ---------------------------------------------------------------- email and phone

/** Email levels: 0 same mailbox, 1 same name at another provider or a one-character typo, 2 different. */
export const EMAIL_LEVELS = 3;

/** The local part without dots, for "same mailbox name at another provider". */
export function mailboxName(email: NormalisedEmail): string {
  return email.local.replace(/\./g, '');
}

export function compareEmails(a: readonly NormalisedEmail[], b: readonly NormalisedEmail[]): Comparison {
  if (a.length === 0 || b.length === 0) return MISSING_COMPARISON;
  let best: Comparison = { level: 2, similarity: 0 };
  for (const x of a) {
    for (const y of b) {
      if (x.canonical === y.canonical) return { level: 0, similarity: 1 };
      // Gmail ignores dots and other providers do not, so "jane.doe@gmail.com" (stored as
      // "janedoe") and "jane.doe@yahoo.com" are the same mailbox name: compare without dots.
      const sameLocal = mailboxName(x) === mailboxName(y) && mailboxName(x).length >= 5;
      const typo = x.domain === y.domain && x.local.length >= 5 && isOneEditApart(x.local, y.local);
      if ((sameLocal || typo) && best.level > 1) best = { level: 1, similarity: 0.8 };
    }
  }
  return best;
}

/** Phone levels: 0 same number, 1 one wrong or swapped digit, or same last seven digits, 2 different. */
export const PHONE_LEVELS = 3;

export function comparePhones(a: readonly NormalisedPhone[], b: readonly NormalisedPhone[]): Comparison {
  if (a.length === 0 || b.length === 0) return MISSING_COMPARISON;
  let best: Comparison = { level: 2, similarity: 0 };
  for (const x of a) {
    for (const y of b) {
      if (x.e164 !== null && x.e164 === y.e164) return { level: 0, similarity: 1 };
      if (x.e164 === null || y.e164 === null) {
        if (x.last7 === y.last7) return { level: 0, similarity: 0.95 };
      }
      const fullX = x.e164 ?? x.last7;
      const fullY = y.e164 ?? y.last7;
      if (x.last7 === y.last7 || hamming(fullX, fullY) === 1 || isAdjacentTransposition(fullX, fullY)) {
        best = { level: 1, similarity: 0.8 };
      }
    }
  }
  return best;
}

// ---------------------------------------------------------------- address

export interface AddressValue {
  number: string | null;
  /** Street and building words (no numbers), abbreviations expanded. */
  words: readonly string[];
  city: string | null;
  postcode: string | null;
  state: string | null;
}

/** Symmetric Monge-Elkan: each word's best Jaro-Winkler partner, averaged, for word lists in any order. */
function wordSetSimilarity(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  const [shorter, longer] = a.length <= b.length ? [a, b] : [b, a];
  let total = 0;
  for (const x of shorter) {
    let best = 0;
    for (const y of longer) {
      const similarity = jw(x, y);
      if (similarity > best) best = similarity;
      if (best === 1) break;
    }
    total += best;
  }
  // Words only one side has (a missing building name) cost a little, not everything.
  const coverage = shorter.length / longer.length;
  return (total / shorter.length) * (0.85 + 0.15 * coverage);
}

/** Street levels: 0 same street and number, 1 same street (number differs or missing), 2 similar, 3 different. */
export const STREET_LEVELS = 4;

export function compareStreets(a: AddressValue, b: AddressValue): Comparison {
  // Without street words on both sides there is nothing to compare (a bare number says nothing).
  if (a.words.length === 0 || b.words.length === 0) return MISSING_COMPARISON;
  const words = wordSetSimilarity(a.words, b.words);
  const numberAgrees = a.number !== null && b.number !== null && a.number === b.number;
  const numberConflicts = a.number !== null && b.number !== null && !numberAgrees && !isOneEditApart(a.number, b.number);
  const similarity = numberConflicts ? words * 0.8 : words;
  if (words >= 0.93 && numberAgrees) return { level: 0, similarity };
  if (words >= 0.93 && !numberConflicts) return { level: 1, similarity };
  if (words >= 0.85) return { level: 1, similarity };
  if (words >= 0.7) return { level: 2, similarity };
  return { level: 3, similarity };
}

/** Locality levels: 0 same postcode and town, 1 same postcode or town, 2 close (typo) or same state only, 3 different. */
export const LOCALITY_LEVELS = 4;

export function compareLocalities(a: AddressValue, b: AddressValue): Comparison {
  const postcodeKnown = a.postcode !== null && b.postcode !== null;
  const cityKnown = a.city !== null && b.city !== null;
  if (!postcodeKnown && !cityKnown) return MISSING_COMPARISON;
  const postcodeSame = postcodeKnown && a.postcode === b.postcode;
  const postcodeClose = postcodeKnown && !postcodeSame && isOneEditApart(a.postcode ?? '', b.postcode ?? '');
  const citySimilarity = cityKnown ? jw(a.city ?? '', b.city ?? '') : 0;
  const citySame = citySimilarity >= 0.95;
  const cityClose = !citySame && citySimilarity >= 0.85;
  const stateSame = a.state !== null && a.state === b.state;
  if (postcodeSame && (citySame || !cityKnown)) return { level: postcodeKnown && cityKnown ? 0 : 1, similarity: 1 };
  if (citySame && !postcodeKnown) return { level: 1, similarity: 0.95 };
  if (postcodeSame || citySame) return { level: 1, similarity: 0.8 };
  if (postcodeClose || cityClose) return { level: 2, similarity: 0.5 };
  if (stateSame) return { level: 2, similarity: 0.3 };
  return { level: 3, similarity: 0 };
}

// ---------------------------------------------------------------- identifiers

/** Member-id levels: 0 same id; different ids are treated as missing (two systems number differently). */
export function compareIdentifiers(a: readonly string[], b: readonly string[]): Comparison {
  if (a.length === 0 || b.length === 0) return MISSING_COMPARISON;
  return a.some((id) => b.includes(id)) ? { level: 0, similarity: 1 } : MISSING_COMPARISON;
}

export function compareGender(a: string | null, b: string | null): Comparison {
  if (a === null || b === null) return MISSING_COMPARISON;
  return a === b ? { level: 0, similarity: 1 } : { level: 1, similarity: 0 };
}
