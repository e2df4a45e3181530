// Authenticated encryption for small secrets at rest (TOTP secrets): AES-256-GCM with
// a key derived by HKDF-SHA256 from a configured master secret. A database dump alone
// then yields no MFA secrets; tampering with a stored value is detected, not decrypted
// into garbage.
//
// Stored format: "v1.<iv>.<tag>.<ciphertext>", each part base64url without padding.
// The version prefix lets a later key or algorithm coexist with rows written today.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export const MIN_MASTER_SECRET_BYTES = 32;
const VERSION = 'v1';
const IV_BYTES = 12; // GCM's native nonce size; random per message (fine far below 2^32 messages per key)
const TAG_BYTES = 16; // full tag: shorter GCM tags are forgeable far more cheaply
// Fixed salt: domain separation for this application (RFC 5869 3.1 allows a non-secret constant).
const HKDF_SALT = 'medspasync-pro/secret-box/v1';

/** Default HKDF info label: a key for TOTP secrets is useless for anything else. */
export const TOTP_SECRET_INFO = 'medspasync-pro totp-secret';

export class SecretBoxError extends Error {
  override readonly name = 'SecretBoxError';
}

/**
 * A 32-byte subkey for one purpose (the info label), from a master secret such as
 * JWT_SECRET. Different labels give independent keys, so one configured secret can
 * safely feed several uses.
 */
export function deriveKey(masterSecret: string | Uint8Array, info: string, length = 32): Buffer {
  const ikm = typeof masterSecret === 'string' ? Buffer.from(masterSecret, 'utf8') : Buffer.from(masterSecret);
  if (ikm.length < MIN_MASTER_SECRET_BYTES) throw new RangeError(`master secret must be at least ${MIN_MASTER_SECRET_BYTES} bytes`);
  if (info.length === 0) throw new RangeError('an HKDF info label is required');
  return Buffer.from(hkdfSync('sha256', ikm, HKDF_SALT, info, length));
}

export interface SecretBox {
  /**
   * Encrypts. `associatedData` (e.g. the user id) is authenticated but not stored:
   * the value then only opens for that same row, so a ciphertext copied onto another
   * user's row is refused.
   */
  seal(plaintext: Uint8Array | string, associatedData?: string): string;
  /** Decrypts, or throws SecretBoxError for any tampering, wrong key, wrong associated data or bad format. */
  open(sealed: string, associatedData?: string): Buffer;
}

const PART = /^[A-Za-z0-9_-]*$/; // empty only for an empty plaintext; iv and tag lengths are checked

function decodePart(part: string | undefined, expectedLength?: number): Buffer {
  if (part === undefined || !PART.test(part)) throw new SecretBoxError('sealed value is malformed');
  const bytes = Buffer.from(part, 'base64url');
  if (bytes.toString('base64url') !== part) throw new SecretBoxError('sealed value is malformed');
  if (expectedLength !== undefined && bytes.length !== expectedLength) throw new SecretBoxError('sealed value is malformed');
  return bytes;
}

export function createSecretBox(masterSecret: string | Uint8Array, info: string = TOTP_SECRET_INFO): SecretBox {
  const key = deriveKey(masterSecret, info);
  return {
    seal(plaintext, associatedData = '') {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(associatedData, 'utf8'));
      const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
      const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
      const parts = [iv, cipher.getAuthTag(), ciphertext].map((b) => b.toString('base64url'));
      return [VERSION, ...parts].join('.');
    },
    open(sealed, associatedData = '') {
      if (typeof sealed !== 'string') throw new SecretBoxError('sealed value is malformed');
      const parts = sealed.split('.');
      if (parts.length !== 4) throw new SecretBoxError('sealed value is malformed');
      if (parts[0] !== VERSION) throw new SecretBoxError('unsupported sealed value version');
      const iv = decodePart(parts[1], IV_BYTES);
      const tag = decodePart(parts[2], TAG_BYTES);
      const ciphertext = decodePart(parts[3]);
      // authTagLength pins the tag size: without it Node accepts a 4-byte tag.
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(associatedData, 'utf8'));
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
      } catch {
        // One message for every cause: which part failed is no business of the caller's.
        throw new SecretBoxError('sealed value failed authentication');
      }
    },
  };
}
