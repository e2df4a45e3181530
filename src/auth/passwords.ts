// Password hashing (argon2id) and the password policy (NIST SP 800-63B 5.1.1.2):
// length over composition, a blocklist of common and context-specific passwords,
// nothing else.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hash, parseOptions, verify, type Algorithm, type Options } from '@node-rs/argon2';

// OWASP Password Storage Cheat Sheet minimum for argon2id. Pinned explicitly: library
// defaults differ between packages and versions (see shared NOTES.md). ~10-30 ms here.
// `2` is Algorithm.Argon2id; the package exports it as a const enum, which
// isolatedModules can't inline, so the value is written out.
export const ARGON2_PARAMS = {
  algorithm: 2 as Algorithm,
  memoryCost: 19_456, // KiB
  timeCost: 2,
  parallelism: 1,
  outputLen: 32,
} as const satisfies Options;

export const PASSWORD_MIN_LENGTH = 8; // blueprint 1.2 (minLength: 8); NIST's minimum too
export const PASSWORD_MAX_LENGTH = 128; // NIST: allow at least 64; a cap keeps hashing cost bounded
// Input longer than this can't be a password we ever accepted: refuse it before hashing (DoS).
const VERIFY_MAX_LENGTH = 1024;

// NIST asks for Unicode normalisation before hashing, so "é" typed as one code point or
// as e + combining accent is the same password on every device. Applied everywhere a
// password enters (hash, verify, policy), so the three always agree.
function normalize(password: string): string {
  return password.normalize('NFKC');
}

/** Shorter than any password the policy accepts, counted the way the policy counts. */
export function isShorterThanAnyPassword(password: string): boolean {
  return [...normalize(password)].length < PASSWORD_MIN_LENGTH;
}

export async function hashPassword(password: string): Promise<string> {
  return hash(normalize(password), ARGON2_PARAMS);
}

/** True only for the right password. Never throws: a malformed or foreign stored hash is just "no". */
export async function verifyPassword(storedHash: string, password: string): Promise<boolean> {
  if (typeof storedHash !== 'string' || typeof password !== 'string' || password.length > VERIFY_MAX_LENGTH) return false;
  try {
    return await verify(storedHash, normalize(password));
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;

/** The hash unknown users are verified against: made once, lazily, with the same parameters as real ones. */
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(32).toString('base64url'));
  return dummyHash;
}

/**
 * Verifies against the user's hash, or, when there is no such user (null/undefined), against
 * a dummy hash with the same parameters and returns false. Both paths cost one argon2
 * verification, so response time doesn't reveal whether an email has an account.
 */
export async function verifyPasswordOrDummy(storedHash: string | null | undefined, password: string): Promise<boolean> {
  if (typeof storedHash === 'string') return verifyPassword(storedHash, password);
  await verifyPassword(await dummyPasswordHash(), typeof password === 'string' ? password : '');
  return false;
}

/** Whether a stored hash was made with other parameters than today's: rehash it after a successful login. */
export function needsRehash(storedHash: string): boolean {
  try {
    const options = parseOptions(storedHash);
    return (
      options.algorithm !== ARGON2_PARAMS.algorithm ||
      options.memoryCost !== ARGON2_PARAMS.memoryCost ||
      options.timeCost !== ARGON2_PARAMS.timeCost ||
      options.parallelism !== ARGON2_PARAMS.parallelism ||
      options.outputLen !== ARGON2_PARAMS.outputLen
    );
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------- policy

export interface PasswordProblem {
  field: 'password';
  message: string;
}

export interface PasswordContext {
  email?: string | null;
  /** The user's first name, last name, and any other name they go by. */
  names?: ReadonlyArray<string | null | undefined>;
}

export const PASSWORD_MESSAGES = {
  required: 'Password is required',
  tooShort: `Password must be at least ${PASSWORD_MIN_LENGTH} characters`,
  tooLong: `Password must be at most ${PASSWORD_MAX_LENGTH} characters`,
  common: 'Password is too common or predictable; choose something harder to guess',
  context: 'Password must not be your email address, your name or the name of this service',
} as const;

// The service's own name is a context-specific word NIST tells us to refuse.
const SERVICE_WORDS = ['medspasync', 'medspasyncpro', 'medspa'];

let commonPasswords: Set<string> | undefined;

/** The shipped list (src/auth/common-passwords.txt), loaded once on first use. */
export function loadCommonPasswords(): Set<string> {
  if (!commonPasswords) {
    const text = readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8');
    commonPasswords = new Set(
      text
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.length > 0 && !line.startsWith('#'))
        .map((line) => line.toLowerCase()),
    );
  }
  return commonPasswords;
}

// Letters and digits only, lower case: "Jane.Doe" and "jane-doe" are the same word here.
function squash(text: string): string {
  return normalize(text).toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');
}

// What cracking rules try first: the word with digits and symbols tacked on the end.
function withoutTrailingDigitsAndSymbols(text: string): string {
  return text.replace(/[^\p{L}]+$/u, '');
}

function isRepeatedOrSequential(codePoints: number[]): boolean {
  if (codePoints.length < 2) return false;
  const step = codePoints[1]! - codePoints[0]!;
  if (Math.abs(step) > 1) return false;
  return codePoints.every((cp, i) => i === 0 || cp - codePoints[i - 1]! === step);
}

function contextWords(context: PasswordContext): Set<string> {
  const words = [...SERVICE_WORDS];
  const email = context.email?.trim();
  if (email) {
    words.push(email);
    const at = email.lastIndexOf('@');
    if (at > 0) words.push(email.slice(0, at));
  }
  const names = (context.names ?? []).filter((n): n is string => typeof n === 'string' && n.trim().length > 0);
  words.push(...names, names.join(''));
  return new Set(words.map(squash).filter((w) => w.length >= 3));
}

/**
 * The problems with a new password, empty when it's acceptable. No composition rules
 * (NIST: they make passwords worse, not stronger). Refused: too short or long, on the
 * common-password list (case-insensitive, also with digits/symbols appended), a single
 * repeated or sequential run ("aaaaaaaa", "12345678"), or the user's email, its local
 * part, their name, or the service's name, again also with digits/symbols appended.
 */
export function checkPasswordPolicy(password: unknown, context: PasswordContext = {}): PasswordProblem[] {
  if (typeof password !== 'string' || password.length === 0) return [{ field: 'password', message: PASSWORD_MESSAGES.required }];
  const normalized = normalize(password);
  const codePoints = [...normalized].map((c) => c.codePointAt(0)!);
  const problems: PasswordProblem[] = [];
  const problem = (message: string) => problems.push({ field: 'password', message });

  if (codePoints.length < PASSWORD_MIN_LENGTH) problem(PASSWORD_MESSAGES.tooShort);
  if (codePoints.length > PASSWORD_MAX_LENGTH) {
    problem(PASSWORD_MESSAGES.tooLong);
    return problems; // no further work on oversized input
  }

  const lower = normalized.toLowerCase();
  const common = loadCommonPasswords();
  if (common.has(lower) || common.has(withoutTrailingDigitsAndSymbols(lower)) || isRepeatedOrSequential(codePoints)) {
    problem(PASSWORD_MESSAGES.common);
  }

  const words = contextWords(context);
  const squashed = squash(normalized);
  if (words.has(squashed) || words.has(withoutTrailingDigitsAndSymbols(squashed))) problem(PASSWORD_MESSAGES.context);

  return problems;
}
