// Access tokens: compact JWS (RFC 7515/7519) with HS256 only, written by hand over
// node:crypto so that nothing here can be talked into another algorithm.
//
// Decision: where issuer and audience live.
// The payload must be exactly the blueprint's eight claims (2.1: sub, email, role,
// practiceId, permissions, iat, exp, jti), yet a token minted for another issuer or
// audience (another deployment or environment sharing a secret by mistake) must be
// refused. So `iss` and `aud` travel in the JOSE protected header, next to `kid`.
// The header is part of the signing input, so they are exactly as tamper-proof as the
// payload; RFC 7519 5.3 registers this very move ("replicating claims as header
// parameters"). The header is exactly {alg, typ, kid, iss, aud}; anything else in it
// (jwk, jku, x5u, crit, ...) is refused, which also closes key-injection tricks.
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { isRole, isValidPermission, type Role } from './rbac.js';

export type JwtSecret = string | Uint8Array;

/** HS256 needs a key at least as long as its output (RFC 7518 3.2). */
export const MIN_SECRET_BYTES = 32;
/** No legitimate access token comes near this; parsing stops before any work on a huge one. */
const MAX_TOKEN_LENGTH = 8192;

export interface AccessTokenClaims {
  sub: string;
  email: string;
  role: Role;
  practiceId: string;
  permissions: string[];
  iat: number;
  exp: number;
  jti: string;
}

const CLAIM_NAMES = ['sub', 'email', 'role', 'practiceId', 'permissions', 'iat', 'exp', 'jti'] as const;
const HEADER_NAMES = ['alg', 'typ', 'kid', 'iss', 'aud'] as const;

export interface AccessTokenHeader {
  alg: 'HS256';
  typ: 'JWT';
  kid: string;
  iss: string;
  aud: string;
}

export type JwtErrorReason =
  | 'malformed' // not three canonical base64url parts of JSON objects, or an unexpected header
  | 'alg' // any algorithm but HS256, "none" included
  | 'kid' // a key id we don't hold (never configured, or retired)
  | 'signature'
  | 'expired'
  | 'not_yet_valid' // issued in the future beyond the allowed clock skew
  | 'issuer'
  | 'audience'
  | 'claims'; // payload isn't exactly the eight claims with the right types

/** Every refusal, with a machine-readable reason for logs and audit; the HTTP layer answers 401 whatever it is. */
export class JwtError extends Error {
  override readonly name = 'JwtError';
  constructor(
    readonly reason: JwtErrorReason,
    message: string,
  ) {
    super(message);
  }
}

function keyBytes(secret: JwtSecret): Buffer {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (bytes.length < MIN_SECRET_BYTES) throw new RangeError(`JWT secret must be at least ${MIN_SECRET_BYTES} bytes`);
  return bytes;
}

/**
 * A stable, non-secret key id for a secret, so configuring JWT_SECRET and
 * JWT_PREVIOUS_SECRET is enough for rotation. Revealing a hash prefix of a
 * high-entropy secret reveals nothing usable.
 */
export function keyIdFor(secret: JwtSecret): string {
  return createHash('sha256').update('medspasync-pro/jwt-kid/v1\0').update(keyBytes(secret)).digest('base64url').slice(0, 16);
}

const encodeJson = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

function hmac(secret: Buffer, signingInput: string): Buffer {
  return createHmac('sha256', secret).update(signingInput, 'ascii').digest();
}

export interface SignAccessTokenOptions {
  secret: JwtSecret;
  kid: string;
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** Unix time in milliseconds; defaults to now. */
  now?: number;
  /** Defaults to a random UUID; pass one only to reuse an id the caller already stored. */
  jti?: string;
}

export type AccessTokenSubject = Pick<AccessTokenClaims, 'sub' | 'email' | 'role' | 'practiceId' | 'permissions'>;

export function signAccessToken(
  subject: AccessTokenSubject,
  options: SignAccessTokenOptions,
): { token: string; claims: AccessTokenClaims } {
  if (!Number.isSafeInteger(options.ttlSeconds) || options.ttlSeconds <= 0) throw new RangeError('ttlSeconds must be a positive integer');
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  // Built field by field, so no extra property of the caller's object can slip into the payload.
  const claims: AccessTokenClaims = {
    sub: subject.sub,
    email: subject.email,
    role: subject.role,
    practiceId: subject.practiceId,
    permissions: [...subject.permissions],
    iat,
    exp: iat + options.ttlSeconds,
    jti: options.jti ?? randomUUID(),
  };
  // Refuse to mint what verify would refuse, so a bug shows up at login, not on every request.
  const problem = claimsProblem({ ...claims });
  if (problem) throw new TypeError(`cannot sign access token: ${problem}`);
  const header: AccessTokenHeader = { alg: 'HS256', typ: 'JWT', kid: options.kid, iss: options.issuer, aud: options.audience };
  if (!nonEmptyString(header.kid, 128) || !nonEmptyString(header.iss, 512) || !nonEmptyString(header.aud, 512)) {
    throw new TypeError('kid, issuer and audience must be non-empty strings');
  }
  const signingInput = `${encodeJson(header)}.${encodeJson(claims)}`;
  const signature = hmac(keyBytes(options.secret), signingInput).toString('base64url');
  return { token: `${signingInput}.${signature}`, claims };
}

export interface VerifyAccessTokenOptions {
  /** Every key id we accept, current and previous (rotation), to its secret. */
  keys: Readonly<Record<string, JwtSecret>>;
  issuer: string;
  audience: string;
  /** Unix time in milliseconds; defaults to now. */
  now?: number;
  /** Tolerance for clocks of several instances disagreeing; default 30 s. */
  clockSkewSeconds?: number;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

// Only the canonical encoding is accepted: otherwise the unused low bits of the last
// character make several strings decode to the same bytes, i.e. one signature would
// have several spellings (a token that's "different" yet valid).
function decodeSegment(segment: string): Buffer {
  if (!BASE64URL.test(segment)) throw new JwtError('malformed', 'token segment is not base64url');
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) throw new JwtError('malformed', 'token segment is not canonical base64url');
  return bytes;
}

function decodeJsonObject(segment: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeSegment(segment).toString('utf8'));
  } catch (error) {
    if (error instanceof JwtError) throw error;
    throw new JwtError('malformed', 'token segment is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JwtError('malformed', 'token segment is not a JSON object');
  return value as Record<string, unknown>;
}

function hasExactKeys(object: Record<string, unknown>, names: readonly string[]): boolean {
  const keys = Object.keys(object);
  return keys.length === names.length && names.every((name) => Object.hasOwn(object, name));
}

function nonEmptyString(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= maxLength;
}

/** Why a payload isn't a well-formed claim set, or null when it is. */
function claimsProblem(claims: Record<string, unknown>): string | null {
  if (!hasExactKeys(claims, CLAIM_NAMES)) return 'payload must have exactly the claims ' + CLAIM_NAMES.join(', ');
  if (!nonEmptyString(claims.sub, 256)) return 'sub must be a non-empty string';
  if (!nonEmptyString(claims.email, 320)) return 'email must be a non-empty string';
  if (!isRole(claims.role)) return 'role must be one of the blueprint roles';
  if (!nonEmptyString(claims.practiceId, 256)) return 'practiceId must be a non-empty string';
  if (!Array.isArray(claims.permissions) || claims.permissions.length > 256 || !claims.permissions.every(isValidPermission)) {
    return 'permissions must be a list of action:resource strings';
  }
  if (!Number.isSafeInteger(claims.iat) || !Number.isSafeInteger(claims.exp)) return 'iat and exp must be integers';
  if ((claims.exp as number) <= (claims.iat as number)) return 'exp must be after iat';
  if (!nonEmptyString(claims.jti, 128)) return 'jti must be a non-empty string';
  return null;
}

/**
 * Verifies signature, issuer, audience, claim shape and times, in that order: nothing
 * in a token is trusted (or even parsed, for the payload) before its signature checks.
 * Returns the claims or throws JwtError. Revocation (jti deny list, deactivated user)
 * is the caller's next step.
 */
export function verifyAccessToken(token: string, options: VerifyAccessTokenOptions): AccessTokenClaims {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new JwtError('malformed', 'token is missing or too long');
  }
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('malformed', 'token must have three parts');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];

  const header = decodeJsonObject(headerPart);
  // The algorithm is fixed by us, never chosen by the token: "none", HS512, RS256
  // (public-key-as-HMAC-secret confusion) and a missing alg are all refused here.
  if (header.alg !== 'HS256') throw new JwtError('alg', 'algorithm not allowed');
  if (!hasExactKeys(header, HEADER_NAMES) || header.typ !== 'JWT' || typeof header.kid !== 'string') {
    throw new JwtError('malformed', 'unexpected token header');
  }
  // Object.hasOwn: a kid of "__proto__" or "constructor" must not find an inherited value.
  if (!Object.hasOwn(options.keys, header.kid)) throw new JwtError('kid', 'unknown key id');
  const secret = keyBytes(options.keys[header.kid]!);

  const signature = decodeSegment(signaturePart);
  const expected = hmac(secret, `${headerPart}.${payloadPart}`);
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
    throw new JwtError('signature', 'signature does not match');
  }

  if (header.iss !== options.issuer) throw new JwtError('issuer', 'token issued by another issuer');
  if (header.aud !== options.audience) throw new JwtError('audience', 'token meant for another audience');

  const payload = decodeJsonObject(payloadPart);
  const problem = claimsProblem(payload);
  if (problem) throw new JwtError('claims', problem);
  const claims = payload as unknown as AccessTokenClaims;

  assertCurrent(claims, options);
  return claims;
}

function assertCurrent(claims: AccessTokenClaims, options: Pick<VerifyAccessTokenOptions, 'now' | 'clockSkewSeconds'>): void {
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const skew = options.clockSkewSeconds ?? 30;
  if (now >= claims.exp + skew) throw new JwtError('expired', 'token has expired');
  if (claims.iat > now + skew) throw new JwtError('not_yet_valid', 'token issued in the future');
}

/**
 * verifyAccessToken with a memory of the tokens that passed, by their exact text. A client sends
 * the same token on every request of its lifetime, and verifying it again (two base64 decodes, an
 * HMAC, two JSON parses, the claim checks) was the largest part of authenticating a request.
 *
 * Only tokens that passed every check are remembered, so nothing an attacker sends can enter or
 * evict without a valid signature; a token that differs by one character is a different key and
 * is verified in full. Expiry is checked on every use; revocation stays the caller's step, as for
 * verifyAccessToken. The claims are frozen: every request holding them shares one object.
 */
export class AccessTokenVerifier {
  private readonly verified = new Map<string, AccessTokenClaims>();

  constructor(
    private readonly options: Omit<VerifyAccessTokenOptions, 'now'>,
    private readonly capacity = 10_000,
  ) {}

  verify(token: string, now: number = Date.now()): AccessTokenClaims {
    const known = this.verified.get(token);
    if (known !== undefined) {
      try {
        assertCurrent(known, { now, clockSkewSeconds: this.options.clockSkewSeconds });
      } catch (error) {
        this.verified.delete(token);
        throw error;
      }
      return known;
    }
    const claims = verifyAccessToken(token, { ...this.options, now });
    Object.freeze(claims.permissions);
    Object.freeze(claims);
    // Oldest first out: a Map iterates in insertion order.
    if (this.verified.size >= this.capacity) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, claims);
    return claims;
  }

  get size(): number {
    return this.verified.size;
  }
}
