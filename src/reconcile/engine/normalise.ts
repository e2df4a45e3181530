// Normalisers: turn one raw value from any export into the canonical form the comparators use.
// Each is a small pure function; none throws on junk, they return null (or an empty list) instead.
import { asText, digitsOnly, foldText, tokens } from './text.js';

// ---------------------------------------------------------------- names

const TITLES = new Set(['mr', 'mrs', 'ms', 'miss', 'mx', 'dr', 'prof', 'sir', 'dame', 'rev']);
const SUFFIXES = new Set(['jr', 'sr', 'ii', 'iii', 'iv', 'md', 'phd', 'dds', 'rn', 'np', 'pa', 'esq']);

/** Folded name tokens without titles and generational/professional suffixes ("Dr. Anne-Marie O'Neil Jr." -> ["anne","marie","oneil"]). */
export function nameTokens(value: string | null): string[] {
  if (value === null) return [];
  const all = tokens(value);
  const kept = all.filter((token) => !TITLES.has(token) && !SUFFIXES.has(token));
  // A name that is nothing but a title ("Miss") is kept as is rather than erased.
  return kept.length > 0 ? kept : all;
}

export interface SplitName { first: string | null; middle: string | null; last: string | null }

/** Splits a single "full name" value: "Garcia, Maria Elena" or "Maria Elena Garcia". */
export function splitFullName(value: string): SplitName {
  const commaAt = value.indexOf(',');
  if (commaAt > 0) {
    const last = value.slice(0, commaAt).trim();
    const rest = nameTokens(value.slice(commaAt + 1));
    return {
      first: rest[0] ?? null,
      middle: rest.length > 1 ? rest.slice(1).join(' ') : null,
      last: last === '' ? null : last,
    };
  }
  const parts = nameTokens(value);
  if (parts.length === 0) return { first: null, middle: null, last: null };
  if (parts.length === 1) return { first: parts[0] ?? null, middle: null, last: null };
  return {
    first: parts[0] ?? null,
    middle: parts.length > 2 ? parts.slice(1, -1).join(' ') : null,
    last: parts[parts.length - 1] ?? null,
  };
}

// ---------------------------------------------------------------- phone

export interface NormalisedPhone {
  /** E.164 ("+15550102030") when the number is complete, otherwise null. */
  e164: string | null;
  /** Last seven digits: survives a missing or different area code / country prefix. */
  last7: string;
}

const EXTENSION = /\s*(?:;\s*ext=|ext\.?|extension|x|#)\s*\d{1,6}\s*$/i;

/**
 * One export cell may hold two numbers ("555-201-3040 / 555-201-9999", "h: ... , c: ..."): each
 * becomes its own value. A cell with one number (extension included) is returned as it is.
 */
export function splitPhoneCell(value: string): string[] {
  const parts = value.split(/\s*(?:[,;/|]|\bor\b|\band\b)\s*/i).filter((part) => digitsOnly(part).length >= 7);
  return parts.length >= 2 ? parts : [value];
}

const EMAIL_IN_TEXT = /[^\s<>(),;:"'[\]]+@[^\s<>(),;:"'[\]]+\.[a-z]{2,}/gi;

/** Every address in one cell ("a@x.com; b@y.com", "Jane Doe <jane@x.com>"); the cell itself when it holds none. */
export function splitEmailCell(value: string): string[] {
  if (!value.includes('<') && value.indexOf('@') === value.lastIndexOf('@')) return [value];
  const found = value.match(EMAIL_IN_TEXT);
  return found === null ? [value] : found;
}

/**
 * Phone number to E.164, default country US/Canada (+1).
 * Handles "(555) 010-2030", "555.010.2030", "1-555-010-2030", "+1 555 010 2030", "001 555 010 2030",
 * "011 44 20 7946 0000" and extensions. Seven-digit local numbers keep only `last7`.
 */
export function normalisePhone(value: unknown): NormalisedPhone | null {
  const text = asText(value);
  if (text === null) return null;
  const withoutExtension = text.replace(EXTENSION, '');
  let international = withoutExtension.trim().startsWith('+');
  let digits = digitsOnly(withoutExtension);
  if (!international && digits.startsWith('00')) {
    international = true;
    digits = digits.slice(2);
  } else if (!international && digits.startsWith('011') && digits.length > 11) {
    international = true; // the North American international dialling prefix
    digits = digits.slice(3);
  }
  if (digits.length < 7 || digits.length > 15) return null;
  if (/^(\d)\1+$/.test(digits)) return null; // 0000000000 and friends are placeholders
  const last7 = digits.slice(-7);
  if (international) return { e164: digits.length >= 8 ? `+${digits}` : null, last7 };
  if (digits.length === 10) return { e164: `+1${digits}`, last7 };
  if (digits.length === 11 && digits.startsWith('1')) return { e164: `+${digits}`, last7 };
  return { e164: null, last7 };
}

// ---------------------------------------------------------------- email

export interface NormalisedEmail {
  /** Lower-case, "+tag" removed, Gmail dots removed and googlemail.com folded to gmail.com. */
  canonical: string;
  /** The canonical local part, for "same mailbox name at another provider". */
  local: string;
  domain: string;
}

const EMAIL_SHAPE = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const DOTLESS_DOMAINS = new Set(['gmail.com', 'googlemail.com']);

export function normaliseEmail(value: unknown): NormalisedEmail | null {
  const text = asText(value);
  if (text === null) return null;
  const lowered = text.toLowerCase().replace(/^mailto:/, '').replace(/^<|>$/g, '').trim();
  if (!EMAIL_SHAPE.test(lowered)) return null;
  const at = lowered.lastIndexOf('@');
  let local = lowered.slice(0, at);
  let domain = lowered.slice(at + 1);
  const plus = local.indexOf('+');
  if (plus > 0) local = local.slice(0, plus);
  if (DOTLESS_DOMAINS.has(domain)) {
    local = local.replace(/\./g, '');
    domain = 'gmail.com';
  }
  if (local === '') return null;
  return { canonical: `${local}@${domain}`, local, domain };
}

// ---------------------------------------------------------------- dates

/**
 * How to read a two-digit year: a birth date is in the past ("84" -> 1984, "05" -> 2005),
 * a transaction date is recent ("24" -> 2024).
 */
export type YearStyle = 'birth' | 'recent';

const MONTHS: Record<string, number> = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, sept: 9, oct: 10, nov: 11, dec: 12,
  january: 1, february: 2, march: 3, april: 4, june: 6, july: 7, august: 8, september: 9, october: 10,
  november: 11, december: 12,
  // Spanish: exports from practices and POS systems set up in Spanish.
  ene: 1, enero: 1, febrero: 2, marzo: 3, abr: 4, abril: 4, mayo: 5, junio: 6, julio: 7, ago: 8, agosto: 8,
  septiembre: 9, setiembre: 9, octubre: 10, noviembre: 11, dic: 12, diciembre: 12,
};

function fullYear(year: number, digits: number, style: YearStyle, now: Date): number {
  if (digits === 4) return year;
  const thisYear = now.getUTCFullYear();
  const century = Math.floor(thisYear / 100) * 100;
  if (style === 'recent') return century + year;
  return century + year > thisYear ? century - 100 + year : century + year;
}

function isCalendarDate(year: number, month: number, day: number): boolean {
  if (year < 1800 || year > 2200 || month < 1 || month > 12 || day < 1) return false;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return day <= daysInMonth;
}

function compact(year: number, month: number, day: number): string {
  return `${String(year).padStart(4, '0')}${String(month).padStart(2, '0')}${String(day).padStart(2, '0')}`;
}

/** Adds the reading when it is a real calendar date and not already present. */
function pushReading(readings: string[], year: number, month: number, day: number): void {
  if (!isCalendarDate(year, month, day)) return;
  const reading = compact(year, month, day);
  if (!readings.includes(reading)) readings.push(reading);
}

/**
 * A date split over three columns ("Birth Month" / "Birth Day" / "Birth Year", "Día" / "Mes" /
 * "Año") as "YYYYMMDD" readings: the month may be a number or a name (English or Spanish), the
 * year four or two digits. Nothing when a part is missing or the parts are not a calendar date.
 */
export function parseDateParts(
  year: string | null, month: string | null, day: string | null, style: YearStyle = 'birth', now: Date = new Date(),
): string[] {
  if (year === null || month === null || day === null) return [];
  const yearText = year.trim();
  const dayText = day.trim().replace(/(?:st|nd|rd|th)$/i, '');
  if (!/^(?:\d{4}|\d{2})$/.test(yearText) || !/^\d{1,2}$/.test(dayText)) return [];
  const monthText = foldText(month).replace(/[\s.]/g, '');
  const monthNumber = /^\d{1,2}$/.test(monthText) ? Number(monthText) : MONTHS[monthText];
  if (monthNumber === undefined) return [];
  const readings: string[] = [];
  pushReading(readings, fullYear(Number(yearText), yearText.length, style, now), monthNumber, Number(dayText));
  return readings;
}

/**
 * Every plausible reading of a date as "YYYYMMDD" strings, most likely first.
 * "03/04/1985" is ambiguous: both 1985-03-04 (US, first) and 1985-04-03 are returned, and the
 * comparator accepts either. "25/04/1985" has one reading. ISO dates, YYYYMMDD (FEBRL), month
 * names and two-digit years are understood. An eight-digit value that is not a calendar date
 * (a typo such as 19851304) is still returned as its digits so a one-digit comparison can use it.
 */
export function parseDateReadings(value: unknown, style: YearStyle = 'birth', now: Date = new Date()): string[] {
  const text = asText(value);
  if (text === null) return [];
  const readings: string[] = [];
  const trimmed = text.trim().toLowerCase();

  const iso = /^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:$|[t\s])/.exec(trimmed);
  if (iso) {
    pushReading(readings, Number(iso[1]), Number(iso[2]), Number(iso[3]));
    return readings;
  }

  const eightDigits = /^(\d{8})$/.exec(trimmed);
  if (eightDigits) {
    const raw = eightDigits[1] ?? '';
    const leadingYear = Number(raw.slice(0, 4));
    if (leadingYear >= 1800 && leadingYear <= 2200) {
      pushReading(readings, leadingYear, Number(raw.slice(4, 6)), Number(raw.slice(6, 8)));
      if (readings.length === 0) readings.push(raw); // a corrupted date: keep its digits
      return readings;
    }
    const year = Number(raw.slice(4, 8));
    const a = Number(raw.slice(0, 2));
    const b = Number(raw.slice(2, 4));
    pushReading(readings, year, a, b);
    pushReading(readings, year, b, a);
    return readings;
  }

  const numeric = /^(\d{1,2})[-/. ](\d{1,2})[-/. ](\d{4}|\d{2})(?:$|[t\s])/.exec(trimmed);
  if (numeric) {
    const a = Number(numeric[1]);
    const b = Number(numeric[2]);
    const yearText = numeric[3] ?? '';
    const year = fullYear(Number(yearText), yearText.length, style, now);
    // US month-first is the default reading; day-first is kept when it is also a real date.
    pushReading(readings, year, a, b);
    pushReading(readings, year, b, a);
    return readings;
  }

  const named = /^(?:[a-z]+,?\s+)?(\d{1,2})(?:st|nd|rd|th)?[-\s.]+([a-z]+)\.?[-,\s]+(\d{4}|\d{2})$/.exec(trimmed)
    ?? null;
  if (named) {
    const month = MONTHS[named[2] ?? ''];
    const yearText = named[3] ?? '';
    if (month !== undefined) {
      pushReading(readings, fullYear(Number(yearText), yearText.length, style, now), month, Number(named[1]));
    }
    return readings;
  }
  const monthFirst = /^(?:[a-z]+,?\s+)?([a-z]+)\.?[-\s]+(\d{1,2})(?:st|nd|rd|th)?,?[-\s]+(\d{4}|\d{2})$/.exec(trimmed);
  if (monthFirst) {
    const month = MONTHS[monthFirst[1] ?? ''];
    const yearText = monthFirst[3] ?? '';
    if (month !== undefined) {
      pushReading(readings, fullYear(Number(yearText), yearText.length, style, now), month, Number(monthFirst[2]));
    }
    return readings;
  }

  // Last resort: anything Date understands that carries a time zone or a time ("2024-03-05T10:00Z" was handled above).
  const parsed = Date.parse(text);
  if (!Number.isNaN(parsed)) {
    const date = new Date(parsed);
    pushReading(readings, date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate());
  }
  return readings;
}

/** Days since 1970-01-01 for a "YYYYMMDD" reading, or null when it is not a calendar date. */
export function dayNumber(reading: string): number | null {
  if (!/^\d{8}$/.test(reading)) return null;
  const year = Number(reading.slice(0, 4));
  const month = Number(reading.slice(4, 6));
  const day = Number(reading.slice(6, 8));
  if (!isCalendarDate(year, month, day)) return null;
  return Date.UTC(year, month - 1, day) / 86_400_000;
}

// ---------------------------------------------------------------- address, postcode, ids

const STREET_ABBREVIATIONS: Record<string, string> = {
  st: 'street', str: 'street', rd: 'road', ave: 'avenue', av: 'avenue', blvd: 'boulevard', dr: 'drive',
  ln: 'lane', ct: 'court', crt: 'court', pl: 'place', cres: 'crescent', cr: 'crescent', cct: 'circuit',
  cir: 'circle', hwy: 'highway', pde: 'parade', tce: 'terrace', ter: 'terrace', pkwy: 'parkway',
  sq: 'square', apt: 'apartment', ste: 'suite', fl: 'floor', n: 'north', s: 'south', e: 'east', w: 'west',
  mt: 'mount', ft: 'fort',
};

/** Address tokens with common street abbreviations expanded ("12 Main St." -> ["12","main","street"]). */
export function addressTokens(...parts: (string | null)[]): string[] {
  const result: string[] = [];
  for (const part of parts) {
    if (part === null) continue;
    for (const token of tokens(part)) result.push(STREET_ABBREVIATIONS[token] ?? token);
  }
  return result;
}

/** Postcode / ZIP: folded, spaces removed, ZIP+4 cut to five digits. */
export function normalisePostcode(value: unknown): string | null {
  const text = asText(value);
  if (text === null) return null;
  const folded = foldText(text).replace(/ /g, '');
  if (folded === '') return null;
  const zipPlus4 = /^(\d{5})\d{4}$/.exec(folded);
  return zipPlus4 ? (zipPlus4[1] ?? folded) : folded;
}

const US_STATES: Record<string, string> = {
  alabama: 'al', alaska: 'ak', arizona: 'az', arkansas: 'ar', california: 'ca', colorado: 'co',
  connecticut: 'ct', delaware: 'de', florida: 'fl', georgia: 'ga', hawaii: 'hi', idaho: 'id', illinois: 'il',
  indiana: 'in', iowa: 'ia', kansas: 'ks', kentucky: 'ky', louisiana: 'la', maine: 'me', maryland: 'md',
  massachusetts: 'ma', michigan: 'mi', minnesota: 'mn', mississippi: 'ms', missouri: 'mo', montana: 'mt',
  nebraska: 'ne', nevada: 'nv', 'new hampshire': 'nh', 'new jersey': 'nj', 'new mexico': 'nm',
  'new york': 'ny', 'north carolina': 'nc', 'north dakota': 'nd', ohio: 'oh', oklahoma: 'ok', oregon: 'or',
  pennsylvania: 'pa', 'rhode island': 'ri', 'south carolina': 'sc', 'south dakota': 'sd', tennessee: 'tn',
  texas: 'tx', utah: 'ut', vermont: 'vt', virginia: 'va', washington: 'wa', 'west virginia': 'wv',
  wisconsin: 'wi', wyoming: 'wy', 'district of columbia': 'dc',
  'new south wales': 'nsw', victoria: 'vic', queensland: 'qld', 'western australia': 'wa',
  'south australia': 'sa', tasmania: 'tas', 'australian capital territory': 'act', 'northern territory': 'nt',
};

/** State / province as a short code when it is a known full name ("California" -> "ca"). */
export function normaliseState(value: unknown): string | null {
  const text = asText(value);
  if (text === null) return null;
  const folded = foldText(text);
  if (folded === '') return null;
  return US_STATES[folded] ?? folded.replace(/ /g, '');
}

/** Identifiers (member numbers) compare on letters and digits only, leading zeros dropped. */
export function normaliseIdentifier(value: unknown): string | null {
  const text = asText(value);
  if (text === null) return null;
  const folded = foldText(text).replace(/ /g, '').replace(/^0+(?=.)/, '');
  return folded.length >= 3 ? folded : null;
}

/** Gender to "f" / "m" / "x", or null. */
export function normaliseGender(value: unknown): string | null {
  const text = asText(value);
  if (text === null) return null;
  const folded = foldText(text);
  if (['f', 'female', 'woman', 'w'].includes(folded)) return 'f';
  if (['m', 'male', 'man'].includes(folded)) return 'm';
  if (['x', 'nonbinary', 'non binary', 'other', 'u', 'unknown'].includes(folded)) return null;
  return null;
}

/** Money to integer cents: "$1,250.00", 1250, "1250.5" -> 125000 / 125050. Numbers are taken as dollars. */
export function parseAmountCents(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return Math.round(value * 100);
  const text = asText(value);
  if (text === null) return null;
  const negative = /^\(.*\)$/.test(text) || text.includes('-');
  const cleaned = text.replace(/[^0-9.]/g, '');
  if (!/^\d+(\.\d+)?$/.test(cleaned)) return null;
  const cents = Math.round(Number(cleaned) * 100);
  return negative ? -cents : cents;
}
