// Standard Webhooks (https://www.standardwebhooks.com): the secret's form, the signature and the
// headers a receiver verifies with any Standard Webhooks library. The signature covers the id and
// the timestamp as well as the body, so a captured delivery can't be replayed later or under
// another id. Secrets are sealed at rest with the secret box, bound to their subscription's id.
import { createHmac, randomBytes } from 'node:crypto';
import { createSecretBox, type SecretBox } from '../auth/secret-box.js';

const SECRET_PREFIX = 'whsec_';
const SECRET_BYTES = 32;
const WEBHOOK_SECRET_INFO = 'medspasync-pro webhook-secret';

/** A fresh secret: `whsec_` and the base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

/** The HMAC key of a secret: its base64 part, decoded. */
export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for one key. */
export function signature(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest('base64')}`;
}

/**
 * The three headers of a delivery. With several keys (a rotation's grace period) the signatures are
 * space-separated: a receiver holding either secret verifies.
 */
export function signedHeaders(keys: readonly Buffer[], id: string, timestampSeconds: number, body: string): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': keys.map((key) => signature(key, id, timestampSeconds, body)).join(' '),
  };
}

/** Seals and opens subscription secrets (AES-256-GCM, its own HKDF label, the subscription id as associated data). */
export class SecretVault {
  private readonly box: SecretBox;
  private readonly keys = new Map<string, Buffer>();

  constructor(encryptionKey: string) {
    this.box = createSecretBox(encryptionKey, WEBHOOK_SECRET_INFO);
  }

  seal(secret: string, subscriptionId: string): string {
    return this.box.seal(secret, subscriptionId);
  }

  /** The HMAC key inside a sealed secret; remembered, so the hot path opens each secret once. */
  key(sealed: string, subscriptionId: string): Buffer {
    const cacheKey = `${subscriptionId}:${sealed}`;
    let key = this.keys.get(cacheKey);
    if (key === undefined) {
      key = secretKey(this.box.open(sealed, subscriptionId).toString('utf8'));
      if (this.keys.size >= 10_000) this.keys.clear(); // bounded; a miss costs one AES-GCM open
      this.keys.set(cacheKey, key);
    }
    return key;
  }
}
