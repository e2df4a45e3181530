// Environment parsing. Every variable is validated once at start; a bad value stops the process
// with one line that names the variable, so an operator never debugs a half-configured server.
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';

export type NodeEnv = 'development' | 'test' | 'production';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RateLimitRule {
  max: number;
  windowMs: number;
}

export interface Config {
  nodeEnv: NodeEnv;
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  /** Size of the pg pool when DATABASE_URL is set. */
  databasePoolSize: number;
  redisUrl: string | undefined;
  jwtSecret: string;
  /** Previous signing secret, accepted for verification only, so tokens survive a rotation. */
  jwtPreviousSecret: string | undefined;
  jwtIssuer: string;
  jwtAudience: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  /** Key material for encrypting secrets at rest (TOTP seeds). Defaults to a derivation of JWT_SECRET. */
  encryptionKey: string;
  logLevel: LogLevel;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  practiceName: string;
  practiceTimeZone: string;
  rateLimitEnabled: boolean;
  /** false, true (trust every hop), or a comma-separated list of proxy addresses/CIDRs. */
  trustProxy: boolean | string;
  /** Body limit for ordinary routes; import and reconcile routes set their own. */
  bodyLimitBytes: number;
  /** Per-version deprecation and sunset dates (ISO dates), e.g. V2_DEPRECATION_DATE. */
  versionDates: Record<string, { deprecationDate: string | null; sunsetDate: string | null }>;
  /** Longest time graceful shutdown waits for in-flight requests before closing anyway. */
  shutdownGraceMs: number;
  /** Public base URL used in Link headers and the OpenAPI servers list. */
  publicBaseUrl: string | undefined;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function readString(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function readInteger(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = readString(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = readString(env, name);
  if (raw === undefined) return fallback;
  if (/^(true|1|yes|on)$/i.test(raw)) return true;
  if (/^(false|0|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function readEnum<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = readString(env, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

function readUrl(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = readString(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(name, `must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  }
  return raw;
}

function readDate(env: Env, name: string): string | null {
  const raw = readString(env, name);
  if (raw === undefined) return null;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(raw) || Number.isNaN(Date.parse(`${raw}T00:00:00Z`))) {
    throw new ConfigError(name, `must be a date like 2027-12-31, got "${raw}"`);
  }
  return raw;
}

function readTimeZone(env: Env, name: string, fallback: string): string {
  const zone = readString(env, name) ?? fallback;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    throw new ConfigError(name, `is not an IANA time zone (like America/New_York), got "${zone}"`);
  }
  return zone;
}

function readTrustProxy(env: Env): boolean | string {
  const raw = readString(env, 'TRUST_PROXY');
  if (raw === undefined || /^(false|0|no|off)$/i.test(raw)) return false;
  if (/^(true|1|yes|on)$/i.test(raw)) return true;
  for (const entry of raw.split(',').map((s) => s.trim())) {
    if (!/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(entry) && !['loopback', 'linklocal', 'uniquelocal'].includes(entry)) {
      throw new ConfigError('TRUST_PROXY', `must be true, false or a list of proxy addresses/CIDRs, got "${entry}"`);
    }
  }
  return raw;
}

function readSecret(env: Env, name: string, nodeEnv: NodeEnv, minLength: number): string | undefined {
  const value = readString(env, name);
  if (value === undefined) {
    if (nodeEnv === 'production') throw new ConfigError(name, 'is required when NODE_ENV=production');
    return undefined;
  }
  if (value.length < minLength) throw new ConfigError(name, `must be at least ${minLength} characters`);
  return value;
}

/**
 * Outside production a missing JWT_SECRET gets a random per-process value: tokens then simply
 * stop working after a restart, which is safe. A fixed, guessable default would not be.
 */
function developmentSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = readEnum<NodeEnv>(env, 'NODE_ENV', ['development', 'test', 'production'], 'development');
  const jwtSecret = readSecret(env, 'JWT_SECRET', nodeEnv, 32) ?? developmentSecret();
  const jwtPreviousSecret = readString(env, 'JWT_PREVIOUS_SECRET');
  if (jwtPreviousSecret !== undefined && jwtPreviousSecret.length < 32) {
    throw new ConfigError('JWT_PREVIOUS_SECRET', 'must be at least 32 characters');
  }
  const encryptionKey = readString(env, 'ENCRYPTION_KEY');
  if (encryptionKey !== undefined && encryptionKey.length < 32) {
    throw new ConfigError('ENCRYPTION_KEY', 'must be at least 32 characters');
  }
  const adminEmail = readString(env, 'MEDSPA_ADMIN_EMAIL');
  if (adminEmail !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(adminEmail)) {
    throw new ConfigError('MEDSPA_ADMIN_EMAIL', 'is not an email address');
  }
  const adminPassword = readString(env, 'MEDSPA_ADMIN_PASSWORD');
  if (adminPassword !== undefined && adminPassword.length < 8) {
    throw new ConfigError('MEDSPA_ADMIN_PASSWORD', 'must be at least 8 characters');
  }

  return {
    nodeEnv,
    port: readInteger(env, 'PORT', 3000, 0, 65535),
    host: readString(env, 'HOST') ?? '0.0.0.0',
    dataDir: resolve(readString(env, 'DATA_DIR') ?? './data'),
    databaseUrl: readUrl(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    databasePoolSize: readInteger(env, 'DATABASE_POOL_SIZE', 10, 1, 200),
    redisUrl: readUrl(env, 'REDIS_URL', ['redis:', 'rediss:']),
    jwtSecret,
    jwtPreviousSecret,
    jwtIssuer: readString(env, 'JWT_ISSUER') ?? 'medspasync-pro',
    jwtAudience: readString(env, 'JWT_AUDIENCE') ?? 'medspasync-pro-api',
    accessTokenTtlSeconds: readInteger(env, 'ACCESS_TOKEN_TTL_SECONDS', 900, 60, 86_400),
    refreshTokenTtlSeconds: readInteger(env, 'REFRESH_TOKEN_TTL_SECONDS', 14 * 86_400, 300, 90 * 86_400),
    encryptionKey: encryptionKey ?? `derived-from-jwt:${jwtSecret}`,
    logLevel: readEnum<LogLevel>(
      env,
      'LOG_LEVEL',
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      nodeEnv === 'test' ? 'silent' : 'info',
    ),
    adminEmail,
    adminPassword,
    practiceName: readString(env, 'MEDSPA_PRACTICE_NAME') ?? 'My Med Spa',
    practiceTimeZone: readTimeZone(env, 'MEDSPA_PRACTICE_TIME_ZONE', 'America/New_York'),
    rateLimitEnabled: readBoolean(env, 'RATE_LIMIT_ENABLED', true),
    trustProxy: readTrustProxy(env),
    bodyLimitBytes: readInteger(env, 'BODY_LIMIT_BYTES', 1_048_576, 1024, 100 * 1_048_576),
    versionDates: {
      v1: { deprecationDate: readDate(env, 'V1_DEPRECATION_DATE'), sunsetDate: readDate(env, 'V1_SUNSET_DATE') },
      v2: { deprecationDate: readDate(env, 'V2_DEPRECATION_DATE'), sunsetDate: readDate(env, 'V2_SUNSET_DATE') },
    },
    shutdownGraceMs: readInteger(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 300_000),
    publicBaseUrl: readUrl(env, 'PUBLIC_BASE_URL', ['http:', 'https:']),
  };
}

/** A config for tests and scripts: defaults plus overrides, never reading the real environment. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ NODE_ENV: 'test', JWT_SECRET: 'test-secret-that-is-at-least-32-characters-long' }), ...overrides };
}
