import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SecretBoxError, TOTP_SECRET_INFO, createSecretBox, deriveKey } from '../../src/auth/secret-box.js';

const MASTER = 'master-secret-of-at-least-32-bytes-0123456789';
const box = createSecretBox(MASTER);

const flip = (part: string, index = 0) => {
  const bytes = Buffer.from(part, 'base64url');
  bytes[index]! ^= 0x01;
  return bytes.toString('base64url');
};

function withPart(sealed: string, index: number, replace: (part: string) => string) {
  const parts = sealed.split('.');
  parts[index] = replace(parts[index]!);
  return parts.join('.');
}

describe('secret box', () => {
  test('round-trips bytes and text', () => {
    const secret = randomBytes(32);
    assert.deepEqual(box.open(box.seal(secret)), secret);
    assert.equal(box.open(box.seal('JBSWY3DPEHPK3PXP')).toString(), 'JBSWY3DPEHPK3PXP');
    assert.equal(box.open(box.seal('')).length, 0);
  });

  test('writes v1.<iv>.<tag>.<ciphertext> in base64url', () => {
    const sealed = box.seal(randomBytes(32));
    const [version, iv, tag, ct] = sealed.split('.');
    assert.equal(version, 'v1');
    assert.equal(Buffer.from(iv!, 'base64url').length, 12);
    assert.equal(Buffer.from(tag!, 'base64url').length, 16);
    assert.equal(Buffer.from(ct!, 'base64url').length, 32);
    assert.match(sealed, /^v1(\.[A-Za-z0-9_-]+){3}$/);
  });

  test('the same secret sealed twice looks different (random IV: no equality leak between rows)', () => {
    assert.notEqual(box.seal('same'), box.seal('same'));
  });

  test('does not contain the plaintext', () => {
    const secret = Buffer.from('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
    const sealed = box.seal(secret);
    assert.ok(!sealed.includes(secret.toString('base64url')));
    assert.ok(!sealed.includes('JBSWY3DP'));
  });

  test('detects a flipped bit in the ciphertext, the tag or the IV', () => {
    const sealed = box.seal(randomBytes(32));
    for (const index of [1, 2, 3]) {
      assert.throws(() => box.open(withPart(sealed, index, (p) => flip(p))), SecretBoxError, `part ${index}`);
    }
  });

  test('refuses a truncated 4-byte auth tag (GCM short-tag forgery)', () => {
    const sealed = box.seal(randomBytes(32));
    assert.throws(() => box.open(withPart(sealed, 2, (p) => Buffer.from(p, 'base64url').subarray(0, 4).toString('base64url'))), SecretBoxError);
  });

  test('refuses a ciphertext made under a guessed key even with a valid short tag', () => {
    // An attacker who can write rows tries the "short tag" route with a forged 4-byte tag.
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', randomBytes(32), iv, { authTagLength: 4 });
    const ct = Buffer.concat([cipher.update('x'), cipher.final()]);
    const forged = ['v1', iv, cipher.getAuthTag(), ct].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
    assert.throws(() => box.open(forged), SecretBoxError);
  });

  test('refuses a value sealed with another master secret', () => {
    const other = createSecretBox('another-master-secret-0123456789abcdefghij');
    assert.throws(() => box.open(other.seal('secret')), SecretBoxError);
  });

  test('refuses a value sealed for another purpose (HKDF info label)', () => {
    const webhookBox = createSecretBox(MASTER, 'medspasync-pro webhook-secret');
    assert.throws(() => box.open(webhookBox.seal('secret')), SecretBoxError);
  });

  test("refuses a ciphertext moved onto another user's row (associated data)", () => {
    const sealed = box.seal('alice-totp-secret', 'user:alice');
    assert.equal(box.open(sealed, 'user:alice').toString(), 'alice-totp-secret');
    assert.throws(() => box.open(sealed, 'user:mallory'), SecretBoxError);
    assert.throws(() => box.open(sealed), SecretBoxError);
  });

  test('refuses an unknown version and malformed values', () => {
    const sealed = box.seal('secret');
    assert.throws(() => box.open(sealed.replace(/^v1/, 'v2')), /unsupported/);
    for (const bad of ['', 'v1', 'v1...', 'v1.a.b', `${sealed}.extra`, sealed.replace(/\./g, ':'), withPart(sealed, 3, (p) => p + '=')]) {
      assert.throws(() => box.open(bad), SecretBoxError, bad);
    }
    assert.throws(() => box.open(undefined as unknown as string), SecretBoxError);
  });

  test('refuses a weak master secret and an empty info label', () => {
    assert.throws(() => createSecretBox('short'), RangeError);
    assert.throws(() => deriveKey(MASTER, ''), RangeError);
  });

  test('deriveKey gives independent 32-byte keys per label, deterministic per secret', () => {
    const a = deriveKey(MASTER, TOTP_SECRET_INFO);
    assert.equal(a.length, 32);
    assert.deepEqual(a, deriveKey(MASTER, TOTP_SECRET_INFO));
    assert.notDeepEqual(a, deriveKey(MASTER, 'medspasync-pro recovery-codes'));
    assert.notDeepEqual(a, deriveKey(MASTER + 'x', TOTP_SECRET_INFO));
  });
});
