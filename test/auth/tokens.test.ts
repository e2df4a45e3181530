import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  API_KEY_PREFIX,
  RECOVERY_CODE_ALPHABET,
  REFRESH_TOKEN_PREFIX,
  apiKeyHint,
  generateApiKey,
  generateRecoveryCodes,
  generateRefreshToken,
  hashRecoveryCode,
  hashToken,
  isApiKeyFormat,
  isRefreshTokenFormat,
  normalizeRecoveryCode,
  safeEqual,
} from '../../src/auth/tokens.js';

describe('refresh tokens and API keys', () => {
  test('carry a recognisable prefix and 256 random bits', () => {
    const refresh = generateRefreshToken();
    const key = generateApiKey();
    assert.match(refresh, /^msp_rt_[A-Za-z0-9_-]{43}$/);
    assert.match(key, /^msp_live_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(key.slice(API_KEY_PREFIX.length), 'base64url').length, 32);
  });

  test('never repeat (10,000 draws)', () => {
    const seen = new Set(Array.from({ length: 10_000 }, generateRefreshToken));
    assert.equal(seen.size, 10_000);
  });

  test('format checks refuse the other kind and junk before any lookup (a refresh token is not an API key)', () => {
    assert.ok(isRefreshTokenFormat(generateRefreshToken()));
    assert.ok(isApiKeyFormat(generateApiKey()));
    assert.ok(!isApiKeyFormat(generateRefreshToken()));
    assert.ok(!isRefreshTokenFormat(generateApiKey()));
    for (const junk of ['', 'msp_live_', `${API_KEY_PREFIX}${'a'.repeat(42)}`, `${API_KEY_PREFIX}${'a'.repeat(44)}`, `${API_KEY_PREFIX}${'a'.repeat(42)}=`, null, 42]) {
      assert.ok(!isApiKeyFormat(junk), String(junk));
    }
  });

  test('hashToken is SHA-256 hex, deterministic (indexable) and does not contain the token', () => {
    const token = generateApiKey();
    const hash = hashToken(token);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(hash, hashToken(token));
    assert.notEqual(hash, hashToken(generateApiKey()));
    assert.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  test('apiKeyHint shows too little to use the key', () => {
    const key = generateApiKey();
    const hint = apiKeyHint(key);
    assert.equal(hint, `msp_live_...${key.slice(-4)}`);
    assert.ok(hint.length < 20);
  });
});

describe('safeEqual', () => {
  test('compares secrets of equal and different lengths without throwing', () => {
    assert.equal(safeEqual('abc', 'abc'), true);
    assert.equal(safeEqual('abc', 'abd'), false);
    assert.equal(safeEqual('abc', 'abcd'), false);
    assert.equal(safeEqual('', ''), true);
    assert.equal(safeEqual('', 'a'), false);
    assert.equal(safeEqual(undefined as unknown as string, 'a'), false);
  });
});

describe('recovery codes', () => {
  const key = randomBytes(32);

  test('ten distinct codes like XXXX-XXXX from the unambiguous alphabet', () => {
    const codes = generateRecoveryCodes();
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const code of codes) assert.match(code, /^[23456789A-HJ-NP-Z]{4}-[23456789A-HJ-NP-Z]{4}$/);
  });

  test('the alphabet has 32 symbols and none of 0, O, 1, I', () => {
    assert.equal(new Set(RECOVERY_CODE_ALPHABET).size, 32);
    for (const ambiguous of '0O1I') assert.ok(!RECOVERY_CODE_ALPHABET.includes(ambiguous));
  });

  test('every symbol is used (uniform sampling, no dead symbols)', () => {
    const seen = new Set(generateRecoveryCodes(200).join('').replace(/-/g, ''));
    assert.equal(seen.size, 32);
  });

  test('normalizes what people type, refuses anything else', () => {
    assert.equal(normalizeRecoveryCode('7k3m q9td'), '7K3M-Q9TD');
    assert.equal(normalizeRecoveryCode(' 7K3M-Q9TD '), '7K3M-Q9TD');
    assert.equal(normalizeRecoveryCode('7K3MQ9TD'), '7K3M-Q9TD');
    for (const bad of ['7K3M-Q9T', '7K3M-Q9TDX', '0K3M-Q9TD', 'IK3M-Q9TD', '7K3M_Q9TD', '', '7K3M-Q9TD'.repeat(5), null]) {
      assert.equal(normalizeRecoveryCode(bad), null, String(bad));
    }
  });

  test('hashRecoveryCode is keyed: a database dump without the server key cannot brute-force the 40 bits', () => {
    const [code] = generateRecoveryCodes(1) as [string];
    const stored = hashRecoveryCode(code, key);
    assert.match(stored!, /^[0-9a-f]{64}$/);
    assert.equal(hashRecoveryCode(code.toLowerCase().replace('-', ' '), key), stored);
    assert.notEqual(hashRecoveryCode(code, randomBytes(32)), stored);
    assert.notEqual(stored, hashToken(code));
  });

  test('hashRecoveryCode returns null for junk and refuses a short key', () => {
    assert.equal(hashRecoveryCode('not a code', key), null);
    assert.throws(() => hashRecoveryCode('7K3M-Q9TD', randomBytes(8)), RangeError);
  });
});
