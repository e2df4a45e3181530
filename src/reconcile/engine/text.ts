// Text folding shared by every normaliser: the same person's name typed on two systems
// differs in accents, case, punctuation and spacing far more often than in letters.

const COMBINING_MARKS = /[\u0300-\u036f]/g;
// Letters that NFKD does not decompose but that exports still spell in plain ASCII.
const SPECIAL_LETTERS: Record<string, string> = {
  ß: 'ss', æ: 'ae', œ: 'oe', ø: 'o', đ: 'd', ð: 'd', þ: 'th', ł: 'l', ı: 'i',
};
const SPECIAL_LETTER_PATTERN = /[ßæœøđðþłı]/g;

/** Lower-case, strip diacritics and compatibility forms: "Zoë ÉLAN" -> "zoe elan". */
export function foldCase(value: string): string {
  return value
    .normalize('NFKD')
    .replace(COMBINING_MARKS, '')
    .toLowerCase()
    .replace(SPECIAL_LETTER_PATTERN, (letter) => SPECIAL_LETTERS[letter] ?? letter);
}

/**
 * Folded text with every run of non-alphanumerics collapsed to one space.
 * Apostrophes vanish instead ("O'Brien" -> "obrien") because exports drop them as often as keep them.
 */
export function foldText(value: string): string {
  return foldCase(value)
    .replace(/['’`]/g, '')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim();
}

/** Folded text split into tokens. */
export function tokens(value: string): string[] {
  const folded = foldText(value);
  return folded === '' ? [] : folded.split(' ');
}

/** Only the digits of a value ("(555) 010-2030" -> "5550102030"). */
export function digitsOnly(value: string): string {
  return value.replace(/\D+/g, '');
}

/** Strings, numbers and booleans become trimmed strings; anything else (objects, null) is absent. */
export function asText(value: unknown): string | null {
  if (typeof value === 'string') {
    const trimmed = value.trim();
    return trimmed === '' ? null : trimmed;
  }
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return null;
}
