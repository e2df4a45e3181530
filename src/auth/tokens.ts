// Opaque secrets handed to clients: refresh tokens, API keys, MFA recovery codes.
// Each is random, shown once, and stored only as a hash.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// Prefixes make a leaked value recognisable (secret scanners, log redaction) and tell
// the two kinds apart at a glance; they carry no secrecy.
export const REFRESH_TOKEN_PREFIX = 'msp_rt_';
export const API_KEY_PREFIX = 'msp_live_';

const RANDOM_BYTES = 32; // 256 bits: unguessable, and too much entropy to brute-force from a hash
const BODY = /^[A-Za-z0-9_-]{43}$/; // 32 bytes in unpadded base64url

function randomBody(): string {
  return randomBytes(RANDOM_BYTES).toString('base64url');
}

export function generateRefreshToken(): string {
  return REFRESH_TOKEN_PREFIX + randomBody();
}

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBody();
}

/** Cheap shape check before any database lookup: junk is refused without touching storage. */
export function isRefreshTokenFormat(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(REFRESH_TOKEN_PREFIX) && BODY.test(value.slice(REFRESH_TOKEN_PREFIX.length));
}

export function isApiKeyFormat(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(API_KEY_PREFIX) && BODY.test(value.slice(API_KEY_PREFIX.length));
}

/**
 * The stored form of a refresh token or API key: SHA-256, hex. A fast unsalted hash is
 * right here (unlike passwords) because the input has 256 random bits: nothing to
 * brute-force, and a deterministic hash can be looked up by index.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Equality of two secrets (or their hashes) in time independent of where they differ.
 * Both sides are hashed first, so different lengths neither throw nor leak the length.
 */
export function safeEqual(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/** What a key listing may show: the prefix and the last four characters, never enough to use. */
export function apiKeyHint(key: string): string {
  return `${API_KEY_PREFIX}...${key.slice(-4)}`;
}

// ---------------------------------------------------------------- recovery codes

// 32 symbols with the look-alikes removed (no 0/O, 1/I): typed from paper without
// ambiguity, and 256 is a multiple of 32, so `byte & 31` is exactly uniform.
export const RECOVERY_CODE_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
export const RECOVERY_CODE_COUNT = 10;
const RECOVERY_CODE_CHARS = 8; // 40 bits each, as GitHub's; login rate limits make guessing hopeless

function formatRecoveryCode(chars: string): string {
  return `${chars.slice(0, 4)}-${chars.slice(4)}`;
}

/** Ten single-use codes like "7K3M-Q9TD", all different. */
export function generateRecoveryCodes(count: number = RECOVERY_CODE_COUNT): string[] {
  const codes = new Set<string>();
  while (codes.size < count) {
    const bytes = randomBytes(RECOVERY_CODE_CHARS);
    let chars = '';
    for (const byte of bytes) chars += RECOVERY_CODE_ALPHABET[byte & 31];
    codes.add(formatRecoveryCode(chars));
  }
  return [...codes];
}

/**
 * The canonical form of what a user typed ("7k3m q9td", "7K3M-Q9TD"), or null if it
 * can't be a recovery code. Case, spaces and dashes are forgiven; nothing else is.
 */
export function normalizeRecoveryCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 32) return null;
  const chars = input.replace(/[\s-]/g, '').toUpperCase();
  if (chars.length !== RECOVERY_CODE_CHARS) return null;
  for (const char of chars) if (!RECOVERY_CODE_ALPHABET.includes(char)) return null;
  return formatRecoveryCode(chars);
}

/**
 * The stored form of a recovery code: HMAC-SHA256 under a server-side key (derive one
 * with deriveKey(secret, 'medspasync-pro recovery-codes') from secret-box.ts).
 * A plain hash would not do: 40 bits fall to a GPU in minutes, so a database dump alone
 * would give away every user's MFA bypass. Returns null for input that can't be a code.
 */
export function hashRecoveryCode(code: string, key: Uint8Array): string | null {
  const normalized = normalizeRecoveryCode(code);
  if (normalized === null) return null;
  if (key.length < 32) throw new RangeError('recovery code key must be at least 32 bytes');
  return createHmac('sha256', key).update(normalized, 'utf8').digest('hex');
}
