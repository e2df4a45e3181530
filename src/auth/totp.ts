// TOTP (RFC 6238) on top of HOTP (RFC 4226), with the blueprint's parameters (2.3):
// SHA-256, 6 digits, 30 s step, a window of 2 steps either side.
// Pure functions over node:crypto; storing the secret (encrypted) and the last used
// step is the caller's job.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type TotpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export const TOTP_DEFAULTS = {
  algorithm: 'SHA256' as TotpAlgorithm,
  digits: 6,
  period: 30,
  window: 2,
  issuer: 'MedSpaSync Pro',
} as const;

// RFC 4226 4 (R6): the shared secret must be at least 128 bits.
const MIN_SECRET_BYTES = 16;

// RFC 6238 5.1 recommends a key as long as the HMAC output.
const SECRET_BYTES: Record<TotpAlgorithm, number> = { SHA1: 20, SHA256: 32, SHA512: 64 };

const HMAC_NAME: Record<TotpAlgorithm, string> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

// ---------------------------------------------------------------- base32 (RFC 4648 6)

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Base32 without padding, the form authenticator apps expect in otpauth URIs. */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_ALPHABET[(buffer >>> bits) & 31];
    }
    buffer &= (1 << bits) - 1; // keep only the bits not yet emitted, so the int never overflows
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes base32. Lenient where people are (case, spaces, trailing '=' padding from
 * other tools), strict where a typo would silently change the key (any other
 * character, or a length no encoder produces, throws).
 */
export function base32Decode(text: string): Buffer {
  const clean = text.replace(/\s+/g, '').replace(/=+$/, '').toUpperCase();
  // 1, 3 and 6 leftover characters can't come from whole bytes.
  if ([1, 3, 6].includes(clean.length % 8)) throw new TypeError('invalid base32 length');
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of clean) {
    const value = BASE32_ALPHABET.indexOf(char);
    if (value < 0) throw new TypeError('invalid base32 character');
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((buffer >>> bits) & 0xff);
    }
    buffer &= (1 << bits) - 1;
  }
  return Buffer.from(out);
}

// ---------------------------------------------------------------- secrets and codes

/** A fresh random secret as long as the algorithm's HMAC output (20 bytes SHA-1, 32 SHA-256, 64 SHA-512). */
export function generateSecret(algorithm: TotpAlgorithm = TOTP_DEFAULTS.algorithm): Buffer {
  return randomBytes(SECRET_BYTES[algorithm]);
}

/** A secret given as base32 text (what users and oathtool see) or as raw bytes. */
export type TotpSecret = Uint8Array | string;

function secretBytes(secret: TotpSecret): Buffer {
  const bytes = typeof secret === 'string' ? base32Decode(secret) : Buffer.from(secret);
  if (bytes.length < MIN_SECRET_BYTES) throw new RangeError(`TOTP secret must be at least ${MIN_SECRET_BYTES} bytes`);
  return bytes;
}

function checkDigits(digits: number): void {
  // Below 6 is guessable (RFC 4226 R4); above 8 exceeds what the 31-bit truncation carries well.
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) throw new RangeError('digits must be 6, 7 or 8');
}

export interface HotpOptions {
  algorithm?: TotpAlgorithm;
  digits?: number;
}

/** HOTP (RFC 4226 5.3): HMAC over the 8-byte big-endian counter, dynamic truncation, decimal. */
export function hotp(secret: TotpSecret, counter: number | bigint, options: HotpOptions = {}): string {
  const algorithm = options.algorithm ?? TOTP_DEFAULTS.algorithm;
  const digits = options.digits ?? TOTP_DEFAULTS.digits;
  checkDigits(digits);
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(HMAC_NAME[algorithm], secretBytes(secret)).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

export interface TotpOptions extends HotpOptions {
  /** Time step in seconds (X in RFC 6238). */
  period?: number;
  /** Unix time in milliseconds; defaults to now. */
  time?: number;
}

/** The time step (T in RFC 6238 4.2) that contains `timeMs`. */
export function timeStep(timeMs: number, period: number = TOTP_DEFAULTS.period): number {
  if (!Number.isInteger(period) || period <= 0) throw new RangeError('period must be a positive integer');
  return Math.floor(timeMs / 1000 / period);
}

export function totp(secret: TotpSecret, options: TotpOptions = {}): string {
  const step = timeStep(options.time ?? Date.now(), options.period ?? TOTP_DEFAULTS.period);
  return hotp(secret, step, options);
}

export interface VerifyTotpOptions extends HotpOptions {
  period?: number;
  /** Steps accepted either side of the current one (blueprint: 2, i.e. +-60 s). */
  window?: number;
  /** Unix time in milliseconds; defaults to now. */
  now?: number;
  /** The step of the last code this user had accepted: it and every earlier step are refused (replay). */
  lastUsedStep?: number | null;
}

/**
 * Checks a code against the steps in the window and returns the matched step, or null.
 * The caller stores the returned step as the user's lastUsedStep, atomically, so the
 * same code (or an older one) can never be accepted twice.
 *
 * Every step in the window is computed and compared in constant time, so the
 * response time says nothing about which step (if any) matched.
 */
export function verifyTotp(secret: TotpSecret, token: string, options: VerifyTotpOptions = {}): number | null {
  const digits = options.digits ?? TOTP_DEFAULTS.digits;
  const period = options.period ?? TOTP_DEFAULTS.period;
  const window = options.window ?? TOTP_DEFAULTS.window;
  if (!Number.isInteger(window) || window < 0 || window > 10) throw new RangeError('window must be an integer 0..10');
  checkDigits(digits);

  // People type "123 456"; anything else that isn't exactly `digits` digits is simply wrong.
  const code = typeof token === 'string' ? token.replace(/\s+/g, '') : '';
  if (!new RegExp(`^\\d{${digits}}$`).test(code)) return null;
  const given = Buffer.from(code);

  const current = timeStep(options.now ?? Date.now(), period);
  const lastUsed = options.lastUsedStep ?? -1;
  let matched: number | null = null;
  for (let step = current - window; step <= current + window; step++) {
    if (step < 0) continue;
    const expected = Buffer.from(hotp(secret, step, { algorithm: options.algorithm, digits }));
    // Keep the latest acceptable match: a code equal to both an old and a newer step
    // (a 1-in-10^digits coincidence) must still not reopen a used step.
    if (timingSafeEqual(expected, given) && step > lastUsed) matched = step;
  }
  return matched;
}

// ---------------------------------------------------------------- enrolment URI

export interface OtpauthUriOptions {
  accountName: string;
  secret: TotpSecret;
  issuer?: string;
  algorithm?: TotpAlgorithm;
  digits?: number;
  period?: number;
}

/**
 * The Key URI Format authenticator apps scan from a QR code:
 * otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=...&digits=...&period=...
 * The issuer is in both the label and the parameter, as the format recommends.
 */
export function otpauthUri(options: OtpauthUriOptions): string {
  const issuer = options.issuer ?? TOTP_DEFAULTS.issuer;
  const algorithm = options.algorithm ?? TOTP_DEFAULTS.algorithm;
  const digits = options.digits ?? TOTP_DEFAULTS.digits;
  const period = options.period ?? TOTP_DEFAULTS.period;
  checkDigits(digits);
  // The format forbids a colon in either part of the label (it separates them).
  if (issuer.includes(':') || options.accountName.includes(':')) throw new TypeError('issuer and account name must not contain ":"');
  const secret = typeof options.secret === 'string' ? base32Encode(base32Decode(options.secret)) : base32Encode(options.secret);
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(options.accountName)}`;
  const query = [
    `secret=${secret}`,
    `issuer=${encodeURIComponent(issuer)}`,
    `algorithm=${algorithm}`,
    `digits=${digits}`,
    `period=${period}`,
  ].join('&');
  return `otpauth://totp/${label}?${query}`;
}
