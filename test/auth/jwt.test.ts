import { createHmac, generateKeyPairSync, randomBytes, sign as rsaSign } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AccessTokenVerifier,
  JwtError,
  keyIdFor,
  signAccessToken,
  verifyAccessToken,
  type AccessTokenSubject,
  type JwtErrorReason,
  type VerifyAccessTokenOptions,
} from '../../src/auth/jwt.js';
import { permissionsForRole } from '../../src/auth/rbac.js';

const SECRET = 'current-secret-of-at-least-32-bytes-0123456789';
const PREVIOUS = 'previous-secret-of-at-least-32-bytes-abcdefghij';
const KID = keyIdFor(SECRET);
const PREVIOUS_KID = keyIdFor(PREVIOUS);
const ISSUER = 'https://api.medspasync.test';
const AUDIENCE = 'medspasync-api';
const NOW = 1_700_000_000_000;
const NOW_S = NOW / 1000;

const subject: AccessTokenSubject = {
  sub: 'user_1',
  email: 'jane@spa.example',
  role: 'PRACTITIONER',
  practiceId: 'practice_1',
  permissions: permissionsForRole('PRACTITIONER'),
};

const signOptions = { secret: SECRET, kid: KID, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900, now: NOW };
const verifyOptions: VerifyAccessTokenOptions = { keys: { [KID]: SECRET }, issuer: ISSUER, audience: AUDIENCE, now: NOW };

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const hs = (algorithm: string, key: string | Buffer, input: string) => createHmac(algorithm, key).update(input).digest('base64url');

const goodHeader = () => ({ alg: 'HS256', typ: 'JWT', kid: KID, iss: ISSUER, aud: AUDIENCE });
const goodClaims = (): Record<string, unknown> => ({ ...subject, iat: NOW_S, exp: NOW_S + 900, jti: 'jti-1' });

/** What an attacker who knows (or guessed) a key can put together by hand. */
function forge(header: Record<string, unknown>, claims: Record<string, unknown>, key: string | Buffer = SECRET, algorithm = 'sha256') {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${hs(algorithm, key, input)}`;
}

function assertRefused(token: string, reason: JwtErrorReason, options: VerifyAccessTokenOptions = verifyOptions) {
  assert.throws(
    () => verifyAccessToken(token, options),
    (error: unknown) => {
      assert.ok(error instanceof JwtError, `expected JwtError, got ${String(error)}`);
      assert.equal(error.reason, reason, error.message);
      return true;
    },
  );
}

describe('signAccessToken', () => {
  test('payload has exactly the blueprint claims, and iss/aud/kid ride in the signed header', () => {
    const { token, claims } = signAccessToken(subject, signOptions);
    const [headerPart, payloadPart] = token.split('.') as [string, string];
    const header = JSON.parse(Buffer.from(headerPart, 'base64url').toString());
    const payload = JSON.parse(Buffer.from(payloadPart, 'base64url').toString());
    assert.deepEqual(Object.keys(payload), ['sub', 'email', 'role', 'practiceId', 'permissions', 'iat', 'exp', 'jti']);
    assert.deepEqual(payload, claims);
    assert.equal(payload.exp - payload.iat, 900);
    assert.equal(payload.iat, NOW_S);
    assert.match(payload.jti, /^[0-9a-f-]{36}$/);
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT', kid: KID, iss: ISSUER, aud: AUDIENCE });
  });

  test('copies only the known fields of the subject (no extra claim can leak in)', () => {
    const sneaky = { ...subject, isSuperUser: true, password: 'x' } as AccessTokenSubject;
    const { token } = signAccessToken(sneaky, signOptions);
    assert.deepEqual(Object.keys(verifyAccessToken(token, verifyOptions)).sort(), ['email', 'exp', 'iat', 'jti', 'permissions', 'practiceId', 'role', 'sub']);
  });

  test('each token gets a fresh jti', () => {
    assert.notEqual(signAccessToken(subject, signOptions).claims.jti, signAccessToken(subject, signOptions).claims.jti);
  });

  test('round-trips through verifyAccessToken', () => {
    const { token, claims } = signAccessToken(subject, signOptions);
    assert.deepEqual(verifyAccessToken(token, verifyOptions), claims);
  });

  test('refuses a weak secret shorter than 32 bytes', () => {
    assert.throws(() => signAccessToken(subject, { ...signOptions, secret: 'short' }), RangeError);
    assert.throws(() => keyIdFor('short'), RangeError);
  });

  test('refuses to mint a token verify would refuse (bad role, bad ttl)', () => {
    assert.throws(() => signAccessToken({ ...subject, role: 'ROOT' as never }, signOptions), TypeError);
    assert.throws(() => signAccessToken(subject, { ...signOptions, ttlSeconds: 0 }), RangeError);
    assert.throws(() => signAccessToken(subject, { ...signOptions, kid: '' }), TypeError);
  });

  test('keyIdFor is stable per secret and differs between secrets', () => {
    assert.equal(keyIdFor(SECRET), KID);
    assert.notEqual(KID, PREVIOUS_KID);
    assert.ok(!KID.includes(SECRET.slice(0, 8)));
  });
});

describe('verifyAccessToken refuses forgeries', () => {
  test('refuses a token signed with alg none', () => {
    const header = { ...goodHeader(), alg: 'none' };
    assertRefused(`${b64(header)}.${b64(goodClaims())}.`, 'alg');
    assertRefused(`${b64(header)}.${b64(goodClaims())}`, 'malformed');
    for (const alg of ['None', 'NONE', 'nOnE']) assertRefused(`${b64({ ...header, alg })}.${b64(goodClaims())}.`, 'alg');
  });

  test('refuses a token with no alg at all', () => {
    const { alg: _alg, ...header } = goodHeader();
    assertRefused(forge(header, goodClaims()), 'alg');
  });

  test('refuses HS512 even when signed with the right secret (no algorithm negotiation)', () => {
    assertRefused(forge({ ...goodHeader(), alg: 'HS512' }, goodClaims(), SECRET, 'sha512'), 'alg');
    assertRefused(forge({ ...goodHeader(), alg: 'HS384' }, goodClaims(), SECRET, 'sha384'), 'alg');
  });

  test('refuses RS256 (key confusion: public key used as an HMAC secret)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    // Classic confusion attack: HMAC-sign with the public key's PEM and claim RS256.
    assertRefused(forge({ ...goodHeader(), alg: 'RS256' }, goodClaims(), publicPem), 'alg');
    // And a genuine RS256 signature.
    const input = `${b64({ ...goodHeader(), alg: 'RS256' })}.${b64(goodClaims())}`;
    assertRefused(`${input}.${rsaSign('sha256', Buffer.from(input), privateKey).toString('base64url')}`, 'alg');
  });

  test('refuses a tampered payload (role escalated to ADMIN)', () => {
    const { token } = signAccessToken(subject, signOptions);
    const [headerPart, , signaturePart] = token.split('.') as [string, string, string];
    const escalated = { ...goodClaims(), role: 'ADMIN', permissions: permissionsForRole('ADMIN') };
    assertRefused(`${headerPart}.${b64(escalated)}.${signaturePart}`, 'signature');
  });

  test('refuses a tampered header (kid/issuer swapped after signing)', () => {
    const { token } = signAccessToken(subject, signOptions);
    const [, payloadPart, signaturePart] = token.split('.') as [string, string, string];
    assertRefused(`${b64({ ...goodHeader(), iss: 'https://evil.example' })}.${payloadPart}.${signaturePart}`, 'signature');
  });

  test('refuses a token signed with the wrong key', () => {
    assertRefused(forge(goodHeader(), goodClaims(), randomBytes(32)), 'signature');
    const { token } = signAccessToken(subject, { ...signOptions, secret: 'another-deployment-secret-0123456789abcdef' });
    assertRefused(token, 'signature');
  });

  test('refuses a truncated or empty signature', () => {
    const { token } = signAccessToken(subject, signOptions);
    assertRefused(token.slice(0, -11), 'signature'); // 24 of the 32 bytes, canonically encoded
    assertRefused(token.slice(0, token.lastIndexOf('.') + 1), 'malformed');
  });

  test('refuses a non-canonical signature encoding (one signature, two spellings)', () => {
    const { token } = signAccessToken(subject, signOptions);
    // 32 bytes in base64url = 43 chars; the last char carries 2 unused bits.
    const last = token.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) ^ 1]!;
    assert.deepEqual(Buffer.from(token.slice(-43, -1) + twin, 'base64url'), Buffer.from(token.slice(-43), 'base64url'));
    assertRefused(token.slice(0, -1) + twin, 'malformed');
    assertRefused(token + '=', 'malformed');
  });

  test('refuses an expired token', () => {
    const { token } = signAccessToken(subject, signOptions);
    assertRefused(token, 'expired', { ...verifyOptions, now: NOW + 900_000 + 30_000 });
    assertRefused(token, 'expired', { ...verifyOptions, now: NOW + 900_000, clockSkewSeconds: 0 });
  });

  test('accepts a token within the clock skew either side', () => {
    const { token } = signAccessToken(subject, signOptions);
    assert.ok(verifyAccessToken(token, { ...verifyOptions, now: NOW + 900_000 + 29_000 }));
    assert.ok(verifyAccessToken(token, { ...verifyOptions, now: NOW - 29_000 }));
  });

  test('refuses a token issued in the future (pre-minted with a skewed clock)', () => {
    const { token } = signAccessToken(subject, { ...signOptions, now: NOW + 3_600_000 });
    assertRefused(token, 'not_yet_valid');
  });

  test('refuses a token for another issuer or audience', () => {
    assertRefused(signAccessToken(subject, { ...signOptions, issuer: 'https://staging.example' }).token, 'issuer');
    assertRefused(signAccessToken(subject, { ...signOptions, audience: 'reporting-api' }).token, 'audience');
  });

  test('accepts a token signed with the previous key during rotation (by its kid)', () => {
    const { token, claims } = signAccessToken(subject, { ...signOptions, secret: PREVIOUS, kid: PREVIOUS_KID });
    const rotated = { ...verifyOptions, keys: { [KID]: SECRET, [PREVIOUS_KID]: PREVIOUS } };
    assert.deepEqual(verifyAccessToken(token, rotated), claims);
    // Once the previous key is retired its tokens are refused.
    assertRefused(token, 'kid');
  });

  test('refuses a token whose kid points at a different key than the one that signed it', () => {
    const { token } = signAccessToken(subject, { ...signOptions, secret: PREVIOUS, kid: KID });
    assertRefused(token, 'signature', { ...verifyOptions, keys: { [KID]: SECRET, [PREVIOUS_KID]: PREVIOUS } });
  });

  test('refuses an unknown kid', () => {
    assertRefused(forge({ ...goodHeader(), kid: 'not-a-key' }, goodClaims()), 'kid');
  });

  test('refuses a kid that names an inherited object property (__proto__, constructor)', () => {
    for (const kid of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      assertRefused(forge({ ...goodHeader(), kid }, goodClaims()), 'kid');
    }
  });

  test('refuses embedded-key and extra header parameters (jwk, jku, crit)', () => {
    assertRefused(forge({ ...goodHeader(), jwk: { kty: 'oct', k: b64('attacker-key') } }, goodClaims()), 'malformed');
    assertRefused(forge({ ...goodHeader(), jku: 'https://evil.example/keys' }, goodClaims()), 'malformed');
    assertRefused(forge({ ...goodHeader(), crit: ['exp'] }, goodClaims()), 'malformed');
    assertRefused(forge({ ...goodHeader(), typ: 'at+jwt' }, goodClaims()), 'malformed');
  });

  test('refuses a validly signed payload with a missing claim', () => {
    const { jti: _jti, ...claims } = goodClaims();
    assertRefused(forge(goodHeader(), claims), 'claims');
  });

  test('refuses a validly signed payload with an extra claim', () => {
    assertRefused(forge(goodHeader(), { ...goodClaims(), admin: true }), 'claims');
  });

  test('refuses claims of the wrong type', () => {
    const cases: Array<Record<string, unknown>> = [
      { sub: 42 },
      { sub: '' },
      { email: null },
      { role: 'SUPERUSER' },
      { role: 'admin' },
      { practiceId: ['practice_1', 'practice_2'] },
      { permissions: 'read:*' },
      { permissions: ['*'] },
      { permissions: [1] },
      { iat: '1700000000' },
      { exp: NOW_S + 0.5 },
      { exp: NOW_S - 1 },
      { jti: {} },
    ];
    for (const override of cases) {
      assertRefused(forge(goodHeader(), { ...goodClaims(), ...override }), 'claims');
    }
  });

  test('refuses malformed tokens without throwing anything but JwtError', () => {
    const malformed = [
      '',
      'abc',
      'a.b',
      'a.b.c.d',
      '..',
      `${b64('not json')}.${b64(goodClaims())}.sig`,
      `${b64([1, 2])}.${b64(goodClaims())}.sig`,
      `${b64('null')}.${b64(goodClaims())}.sig`,
      `${b64(goodHeader())}+.${b64(goodClaims())}.sig`,
      'x'.repeat(10_000),
    ];
    for (const token of malformed) assertRefused(token, 'malformed');
    assertRefused(undefined as unknown as string, 'malformed');
  });

  test('a signed but non-JSON payload is malformed', () => {
    const input = `${b64(goodHeader())}.${b64('not json')}`;
    assertRefused(`${input}.${hs('sha256', SECRET, input)}`, 'malformed');
  });
});

describe('AccessTokenVerifier (remembers tokens that passed)', () => {
  const { now: _now, ...options } = verifyOptions;
  const refusal = (reason: JwtErrorReason) => (error: unknown) => error instanceof JwtError && error.reason === reason;

  test('returns the same claims as verifyAccessToken, frozen so no request can change them for the next', () => {
    const verifier = new AccessTokenVerifier(options);
    const { token, claims } = signAccessToken(subject, signOptions);
    const first = verifier.verify(token, NOW);
    assert.deepEqual(first, claims);
    assert.equal(verifier.verify(token, NOW), first);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.permissions));
  });

  test('refuses a remembered token once it has expired', () => {
    const verifier = new AccessTokenVerifier(options);
    const { token } = signAccessToken(subject, signOptions);
    verifier.verify(token, NOW);
    assert.throws(() => verifier.verify(token, NOW + 900_000 + 30_000), refusal('expired'));
    assert.equal(verifier.size, 0, 'an expired token is forgotten');
  });

  test('refuses a forgery one character away from a remembered token (the whole text is the key)', () => {
    const verifier = new AccessTokenVerifier(options);
    const { token } = signAccessToken(subject, signOptions);
    verifier.verify(token, NOW);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const escalated = b64({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), role: 'ADMIN' });
    assert.throws(() => verifier.verify(`${header}.${escalated}.${signature}`, NOW), refusal('signature'));
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    assert.throws(() => verifier.verify(`${header}.${payload}.${flipped}`, NOW), refusal('signature'));
  });

  test('a flood of forged tokens never enters the memory; valid ones stay within its capacity', () => {
    const verifier = new AccessTokenVerifier(options, 3);
    for (let i = 0; i < 50; i += 1) {
      assert.throws(() => verifier.verify(forge(goodHeader(), { ...goodClaims(), jti: `f-${i}` }, 'attacker-key-of-at-least-32-bytes-xxxxxxx'), NOW));
    }
    assert.equal(verifier.size, 0);
    const tokens = Array.from({ length: 5 }, (_, i) => signAccessToken(subject, { ...signOptions, jti: `j-${i}` }).token);
    for (const token of tokens) verifier.verify(token, NOW);
    assert.equal(verifier.size, 3);
    // The oldest were dropped, and are verified again in full when they come back.
    assert.ok(verifier.verify(tokens[0]!, NOW));
  });
});
