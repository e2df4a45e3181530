// Encryption of PHI fields at rest (45 CFR 164.312(a)(2)(iv)), envelope style:
//
//   master key (configuration: PHI_MASTER_KEY, never in the database)
//     └─ wraps each practice's keys (table phi_data_keys, AES-256-GCM, one row per key version)
//          ├─ data keys, versioned: seal and open rows (AES-256-GCM, AAD = table, row id, key version)
//          └─ one index key: keyed blind indexes (HMAC-SHA256) for equality and search terms
//
// A database dump or a copy of PGlite's files then holds ciphertext, wrapped keys and HMACs only.
// Every sealed value is stored with the version of the data key that sealed it, so rotation
// (rotateDataKey below) can move rows one batch at a time while every row stays readable.
//
// The hot path (a patient list) must not pay for key handling: a practice's unwrapped keys are
// cached in process for DATA_KEY_CACHE_SECONDS, so a request costs one AES-GCM open per row and
// no HKDF, unwrap or database round trip. An optional bounded cache of opened values
// (PHI_ROW_CACHE_SIZE) skips even that for rows read before; it is keyed by the ciphertext itself,
// so a changed or swapped value in the database never hits it.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { Database, Queryable } from './database.js';
import { withSystem } from './scope.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Blind indexes: 128 bits of HMAC-SHA256 keep collisions out of reach of a practice's row count. */
const BLIND_INDEX_BYTES = 16;
const MASTER_KEY_INFO = 'medspasync-pro phi-master-key';
const HKDF_SALT = 'medspasync-pro/field-encryption/v1';

export class FieldEncryptionError extends Error {
  override readonly name = 'FieldEncryptionError';
}

/** The configured master key is not the one that wrapped the stored keys: refuse to start. */
export class WrongMasterKeyError extends FieldEncryptionError {}

/** A row names a data key version this process hasn't loaded (another instance just rotated). */
export class UnknownDataKeyError extends FieldEncryptionError {}

export interface MasterKey {
  /** Public fingerprint stored with every wrapped key; reveals nothing about the key. */
  id: string;
  key: Buffer;
}

/** A master key from its configured secret (at least 32 characters); the id is an HMAC fingerprint. */
export function masterKeyFrom(secret: string): MasterKey {
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), HKDF_SALT, MASTER_KEY_INFO, KEY_BYTES));
  const id = createHmac('sha256', key).update('master key id').digest('hex').slice(0, 16);
  return { id, key };
}

function sealBytes(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64');
}

function openBytes(key: Buffer, sealed: string, aad: string): Buffer {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length < IV_BYTES + TAG_BYTES) throw new FieldEncryptionError('sealed value is malformed');
  // authTagLength pins the tag size: without it Node accepts a truncated tag.
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    // One message for every cause (tampering, a value moved to another row, the wrong key).
    throw new FieldEncryptionError('sealed value failed authentication');
  }
}

type KeyPurpose = 'data' | 'index';
const wrapAad = (practiceId: string, purpose: KeyPurpose, version: number) => `phi_data_keys:${practiceId}:${purpose}:${version}`;

interface WrappedKeyRow {
  practice_id: string;
  purpose: KeyPurpose;
  version: number;
  wrapped: string;
  master_key_id: string;
}

/**
 * A bounded memo of opened values, keyed by the sealed text (unique per seal: random IV). FIFO
 * eviction: a hit costs one Map lookup, no reordering. Size 0 disables it.
 */
class OpenedCache {
  private readonly entries = new Map<string, { aad: string; value: unknown }>();
  constructor(private readonly size: number) {}

  get(sealed: string, aad: string): unknown {
    const entry = this.entries.get(sealed);
    // The same ciphertext under another row id or key version is not the same value: open it (and fail).
    return entry !== undefined && entry.aad === aad ? entry.value : undefined;
  }

  set(sealed: string, aad: string, value: unknown): void {
    if (this.size === 0) return;
    if (this.entries.size >= this.size) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(sealed, { aad, value });
  }
}

/** One practice's unwrapped keys: what a request seals, opens and indexes with. */
export class PracticeKeys {
  constructor(
    readonly practiceId: string,
    readonly activeVersion: number,
    private readonly dataKeys: ReadonlyMap<number, Buffer>,
    private readonly indexKey: Buffer,
    private readonly opened: OpenedCache,
  ) {}

  hasVersion(version: number): boolean {
    return this.dataKeys.has(version);
  }

  /** Seals `value` (JSON) for `table` row `rowId` under the active data key. */
  seal(table: string, rowId: string, value: unknown): { sealed: string; version: number } {
    const version = this.activeVersion;
    const sealed = sealBytes(this.dataKeys.get(version)!, Buffer.from(JSON.stringify(value), 'utf8'), `${table}:${rowId}:${version}`);
    return { sealed, version };
  }

  /**
   * Opens a value sealed for `table` row `rowId` under key `version`; a moved or altered value
   * throws. `remember: false` for large or rarely reread values (job uploads) that would crowd the
   * opened-row cache.
   */
  open<T>(table: string, rowId: string, version: number, sealed: string, remember = true): T {
    const aad = `${table}:${rowId}:${version}`;
    const cached = remember ? this.opened.get(sealed, aad) : undefined;
    if (cached !== undefined) return cached as T;
    const key = this.dataKeys.get(version);
    if (key === undefined) throw new UnknownDataKeyError(`data key version ${version} of practice ${this.practiceId} is not loaded`);
    const value = JSON.parse(openBytes(key, sealed, aad).toString('utf8')) as T;
    if (remember) this.opened.set(sealed, aad, value);
    return value;
  }

  /** Keyed blind index of a normalised value, for equality lookups and unique indexes. */
  blindIndex(kind: string, normalised: string): Buffer {
    return createHmac('sha256', this.indexKey).update(`${kind}\u0000${normalised}`).digest().subarray(0, BLIND_INDEX_BYTES);
  }

  /**
   * A search term as a signed 64-bit integer (decimal text, for a bigint[] column with a GIN
   * index): 64 bits are plenty, since a term only selects candidates that are verified after opening.
   */
  term(kind: string, text: string): string {
    return createHmac('sha256', this.indexKey).update(`${kind}\u0000${text}`).digest().readBigInt64BE(0).toString();
  }
}

export interface KeyringOptions {
  /** PHI_MASTER_KEY. */
  masterSecret: string;
  /** PHI_PREVIOUS_MASTER_KEYS: still accepted to unwrap, and re-wrapped under the current one at start. */
  previousSecrets?: readonly string[];
  /** DATA_KEY_CACHE_SECONDS: how long unwrapped keys stay in process before being read again. */
  cacheSeconds: number;
  /** PHI_ROW_CACHE_SIZE: opened values kept in process (0: none). */
  openedCacheSize: number;
  now?: () => number;
}

/**
 * The process's view of every practice's keys. start() checks the master key against the stored
 * keys (a wrong key stops the process) and re-wraps keys left under a previous master key.
 */
export class PhiKeyring {
  private readonly master: MasterKey;
  private readonly previous: MasterKey[];
  private readonly cache = new Map<string, { keys: PracticeKeys; expiresAt: number }>();
  private readonly loading = new Map<string, Promise<PracticeKeys>>();
  private readonly opened: OpenedCache;
  private readonly now: () => number;

  constructor(
    private readonly db: Database,
    private readonly options: KeyringOptions,
  ) {
    this.master = masterKeyFrom(options.masterSecret);
    this.previous = (options.previousSecrets ?? []).map(masterKeyFrom);
    this.opened = new OpenedCache(options.openedCacheSize);
    this.now = options.now ?? Date.now;
  }

  get masterKeyId(): string {
    return this.master.id;
  }

  get cacheSeconds(): number {
    return this.options.cacheSeconds;
  }

  /**
   * Refuses a master key that opens none of the stored keys, and re-wraps every key still under a
   * previous master key: a master key rotation takes effect at once, without touching any row.
   */
  async start(): Promise<{ rewrapped: number }> {
    return withSystem(this.db, async (tx) => {
      const { rows } = await tx.query<WrappedKeyRow>(`SELECT practice_id, purpose, version, wrapped, master_key_id FROM phi_data_keys`);
      let rewrapped = 0;
      for (const row of rows) {
        if (row.master_key_id === this.master.id) continue;
        const old = this.previous.find((candidate) => candidate.id === row.master_key_id);
        if (old === undefined) {
          throw new WrongMasterKeyError(
            `PHI_MASTER_KEY (key id ${this.master.id}) is not the master key that wrapped the stored data keys (key id ${row.master_key_id}); ` +
              'set PHI_MASTER_KEY to that key, or list it in PHI_PREVIOUS_MASTER_KEYS to re-wrap under the new one',
          );
        }
        const key = openBytes(old.key, row.wrapped, wrapAad(row.practice_id, row.purpose, row.version));
        await tx.query(
          `UPDATE phi_data_keys SET wrapped = $4, master_key_id = $5 WHERE practice_id = $1 AND purpose = $2 AND version = $3`,
          [row.practice_id, row.purpose, row.version, sealBytes(this.master.key, key, wrapAad(row.practice_id, row.purpose, row.version)), this.master.id],
        );
        rewrapped += 1;
      }
      return { rewrapped };
    });
  }

  /** The practice's keys: from the process cache, else read (and created on first use) in one transaction. */
  forPractice(practiceId: string): Promise<PracticeKeys> | PracticeKeys {
    const cached = this.cache.get(practiceId);
    if (cached !== undefined && cached.expiresAt > this.now()) return cached.keys;
    return this.reload(practiceId);
  }

  /** Reads the practice's keys again (after a rotation elsewhere, or expiry); concurrent callers share one read. */
  reload(practiceId: string): Promise<PracticeKeys> {
    const pending = this.loading.get(practiceId);
    if (pending !== undefined) return pending;
    const load = this.load(practiceId).finally(() => this.loading.delete(practiceId));
    this.loading.set(practiceId, load);
    return load;
  }

  /** Runs `work` with the practice's keys; once more with freshly read keys if a row names a newer key version. */
  async withKeys<T>(practiceId: string, work: (keys: PracticeKeys) => T | Promise<T>): Promise<T> {
    try {
      return await work(await this.forPractice(practiceId));
    } catch (error) {
      if (!(error instanceof UnknownDataKeyError)) throw error;
      return work(await this.reload(practiceId));
    }
  }

  private async load(practiceId: string): Promise<PracticeKeys> {
    const rows = await withSystem(this.db, async (tx) => {
      let found = await this.readWrapped(tx, practiceId);
      if (!found.some((row) => row.purpose === 'data') || !found.some((row) => row.purpose === 'index')) {
        await this.createFirstKeys(tx, practiceId);
        found = await this.readWrapped(tx, practiceId);
      }
      return found;
    });
    const keys = this.unwrapAll(practiceId, rows);
    this.cache.set(practiceId, { keys, expiresAt: this.now() + this.options.cacheSeconds * 1000 });
    return keys;
  }

  private async readWrapped(tx: Queryable, practiceId: string): Promise<WrappedKeyRow[]> {
    const { rows } = await tx.query<WrappedKeyRow>(
      `SELECT practice_id, purpose, version, wrapped, master_key_id FROM phi_data_keys WHERE practice_id = $1 ORDER BY purpose, version`,
      [practiceId],
    );
    return rows;
  }

  // Concurrent first uses (two instances) both try; the primary key keeps one of each.
  private async createFirstKeys(tx: Queryable, practiceId: string): Promise<void> {
    for (const purpose of ['data', 'index'] as const) {
      await tx.query(
        `INSERT INTO phi_data_keys (practice_id, purpose, version, wrapped, master_key_id) VALUES ($1, $2, 1, $3, $4)
         ON CONFLICT DO NOTHING`,
        [practiceId, purpose, this.wrap(practiceId, purpose, 1, randomBytes(KEY_BYTES)), this.master.id],
      );
    }
  }

  wrap(practiceId: string, purpose: KeyPurpose, version: number, key: Buffer): string {
    return sealBytes(this.master.key, key, wrapAad(practiceId, purpose, version));
  }

  private unwrapAll(practiceId: string, rows: WrappedKeyRow[]): PracticeKeys {
    const dataKeys = new Map<number, Buffer>();
    let indexKey: Buffer | undefined;
    for (const row of rows) {
      const master = row.master_key_id === this.master.id ? this.master : this.previous.find((candidate) => candidate.id === row.master_key_id);
      if (master === undefined) throw new WrongMasterKeyError(`the data keys of practice ${practiceId} are wrapped by master key ${row.master_key_id}, which is not configured`);
      const key = openBytes(master.key, row.wrapped, wrapAad(practiceId, row.purpose, row.version));
      if (row.purpose === 'index') indexKey = key;
      else dataKeys.set(row.version, key);
    }
    const activeVersion = Math.max(...dataKeys.keys());
    return new PracticeKeys(practiceId, activeVersion, dataKeys, indexKey!, this.opened);
  }

  /** Adds data key version n+1 as the practice's active key; returns it. Rows move to it by rotateDataKey. */
  async addDataKey(tx: Queryable, practiceId: string): Promise<number> {
    const { rows } = await tx.query<{ version: number }>(
      `SELECT coalesce(max(version), 0) AS version FROM phi_data_keys WHERE practice_id = $1 AND purpose = 'data'`,
      [practiceId],
    );
    const version = Number(rows[0]!.version) + 1;
    await tx.query(
      `INSERT INTO phi_data_keys (practice_id, purpose, version, wrapped, master_key_id) VALUES ($1, 'data', $2, $3, $4)`,
      [practiceId, version, this.wrap(practiceId, 'data', version, randomBytes(KEY_BYTES)), this.master.id],
    );
    this.cache.delete(practiceId);
    return version;
  }
}
