// Environment parsing. Every variable is validated once at start; a bad value stops the process
// with one line that names the variable, so an operator never debugs a half-configured server.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export type NodeEnv = 'development' | 'test' | 'production';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RateLimitRule {
  max: number;
  windowMs: number;
}

/** The blueprint's 3.1 budgets: `global` per IP for every route without its own; `loginAccount` per email. */
export type RateLimitName = 'global' | 'login' | 'loginAccount' | 'reconcile' | 'patients' | 'appointments';
export type RateLimits = Record<RateLimitName, RateLimitRule>;

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
  /**
   * Automatic logoff (45 CFR 164.312(a)(2)(iii)): a session (a login's refresh-token family) not
   * refreshed for longer than this can't be refreshed any more, nor one older than the lifetime.
   */
  sessionIdleTimeoutSeconds: number;
  sessionMaxLifetimeSeconds: number;
  /** Consecutive failed logins that lock an account, and for how long. */
  loginLockoutThreshold: number;
  loginLockoutMinutes: number;
  /** Key material for encrypting secrets at rest (TOTP seeds, recovery-code hashing). */
  encryptionKey: string;
  /** Encryption of patients' PHI at rest (docs/security.md, "PHI encryption at rest"). */
  phi: PhiConfig;
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
  /** RATE_LIMIT_*_MAX / RATE_LIMIT_*_WINDOW_MS; defaults are the blueprint's 3.1. */
  rateLimits: RateLimits;
  /** Browser origins allowed by CORS (CORS_ORIGINS); empty: no CORS headers at all. */
  corsOrigins: string[];
  /** Per-request deadline (REQUEST_TIMEOUT_MS): past it the client gets a 504 envelope. */
  requestTimeoutMs: number;
  /** Node server timeouts against slow clients (HTTP_*_TIMEOUT_MS). */
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  httpKeepAliveTimeoutMs: number;
  /** Native HTTPS when both are set (TLS_CERT_FILE, TLS_KEY_FILE: PEM files). */
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  /** How long a request waits for a PostgreSQL connection before failing with 503. */
  databaseConnectTimeoutMs: number;
  /** Per-version deprecation and sunset dates (ISO dates), e.g. V2_DEPRECATION_DATE. */
  versionDates: Record<string, { deprecationDate: string | null; sunsetDate: string | null }>;
  /** Longest time graceful shutdown waits for in-flight requests before closing anyway. */
  shutdownGraceMs: number;
  /** Time between a SIGTERM and the closing of the server, while /health/ready is 503 (SHUTDOWN_DRAIN_MS). */
  shutdownDrainMs: number;
  /** Public base URL used in Link headers and the OpenAPI servers list. */
  publicBaseUrl: string | undefined;
  /** POST /v1/ai/reconcile: worker pool, circuit breaker (blueprint 3.2) and body limit. */
  reconcile: ReconcileConfig;
  /** Domain events: the outbox, webhook deliveries, the real-time stream (docs/events.md). */
  events: EventsConfig;
  /** Audit retention and break-glass access (docs/hipaa.md). */
  audit: AuditConfig;
  emergencyAccess: EmergencyAccessConfig;
  /** GET /metrics on a listener of its own (METRICS_HOST, METRICS_PORT; port 0: no metrics at all). */
  metrics: MetricsConfig;
}

export interface PhiConfig {
  /** PHI_MASTER_KEY (default: ENCRYPTION_KEY): wraps every practice's data keys; never stored. */
  masterKey: string;
  /** PHI_PREVIOUS_MASTER_KEYS (comma-separated): accepted to unwrap, re-wrapped under masterKey at start. */
  previousMasterKeys: string[];
  /** DATA_KEY_CACHE_SECONDS: unwrapped data keys stay in process this long (and a rotation waits this long for other instances). */
  dataKeyCacheSeconds: number;
  /** PHI_ROW_CACHE_SIZE: opened (decrypted) patient rows kept in process memory, keyed by ciphertext; 0 disables. */
  rowCacheSize: number;
}

function readPhiConfig(env: Env, encryptionKey: string): PhiConfig {
  const masterKey = readSecret(env, 'PHI_MASTER_KEY', 'development', 32) ?? encryptionKey;
  const previous = (readString(env, 'PHI_PREVIOUS_MASTER_KEYS') ?? '').split(',').map((key) => key.trim()).filter(Boolean);
  if (previous.some((key) => key.length < 32)) throw new ConfigError('PHI_PREVIOUS_MASTER_KEYS', 'every key must be at least 32 characters');
  return {
    masterKey,
    previousMasterKeys: previous,
    dataKeyCacheSeconds: readInteger(env, 'DATA_KEY_CACHE_SECONDS', 300, 1, 86_400),
    rowCacheSize: readInteger(env, 'PHI_ROW_CACHE_SIZE', 10_000, 0, 10_000_000),
  };
}

export interface MetricsConfig {
  enabled: boolean;
  host: string;
  port: number;
}

export interface AuditConfig {
  /** Years audit events and seals are kept before purge-audit may remove them (AUDIT_RETENTION_YEARS, at least 6). */
  retentionYears: number;
}

export interface EmergencyAccessConfig {
  /** Length of a grant when the request names none (EMERGENCY_ACCESS_DEFAULT_MINUTES). */
  defaultMinutes: number;
  /** Longest grant a request may ask for (EMERGENCY_ACCESS_MAX_MINUTES). */
  maxMinutes: number;
  /** A grant needs MFA enrolled and a current code in the request (EMERGENCY_ACCESS_REQUIRE_MFA). */
  requireMfa: boolean;
}

/** HIPAA 164.316(b)(2)(i): documentation, audit records included, is kept six years. */
export const MIN_AUDIT_RETENTION_YEARS = 6;

function readHipaa(env: Env): { audit: AuditConfig; emergencyAccess: EmergencyAccessConfig } {
  const years = readString(env, 'AUDIT_RETENTION_YEARS');
  if (years !== undefined && /^\d+$/.test(years) && Number(years) < MIN_AUDIT_RETENTION_YEARS) {
    throw new ConfigError('AUDIT_RETENTION_YEARS', `must be at least ${MIN_AUDIT_RETENTION_YEARS} (HIPAA keeps audit records six years), got ${years}`);
  }
  const maxMinutes = readInteger(env, 'EMERGENCY_ACCESS_MAX_MINUTES', 240, 5, 24 * 60);
  const defaultMinutes = readInteger(env, 'EMERGENCY_ACCESS_DEFAULT_MINUTES', Math.min(60, maxMinutes), 5, 24 * 60);
  if (defaultMinutes > maxMinutes) {
    throw new ConfigError('EMERGENCY_ACCESS_DEFAULT_MINUTES', `must not exceed EMERGENCY_ACCESS_MAX_MINUTES (${maxMinutes}), got ${defaultMinutes}`);
  }
  return {
    audit: { retentionYears: readInteger(env, 'AUDIT_RETENTION_YEARS', MIN_AUDIT_RETENTION_YEARS, MIN_AUDIT_RETENTION_YEARS, 100) },
    emergencyAccess: { defaultMinutes, maxMinutes, requireMfa: readBoolean(env, 'EMERGENCY_ACCESS_REQUIRE_MFA', true) },
  };
}

export interface EventsConfig {
  /** Days an event stays in the outbox (OUTBOX_RETENTION_DAYS): the stream's resume window. */
  retentionDays: number;
  /** Webhook deliveries (docs/events.md, "Webhooks"). */
  webhooks: WebhookConfig;
  /** The real-time stream (GET /v2/events/stream, events/stream.ts). */
  stream: EventStreamConfig;
}

export interface WebhookConfig {
  /** Deliver in this process (WEBHOOK_WORKER_ENABLED, default true); any number of instances share the work. */
  workerEnabled: boolean;
  /** Plain http and loopback/private targets (WEBHOOK_ALLOW_LOOPBACK): development and tests only. Never metadata addresses. */
  allowLoopback: boolean;
  /** Per-request deadline, connect to last byte (WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  /** Deliveries in flight per instance (WEBHOOK_CONCURRENCY). */
  concurrency: number;
  /** Nominal waits before each retry (WEBHOOK_RETRY_SCHEDULE); its length is the number of retries. */
  retryScheduleMs: number[];
  /** A subscription failing without a success for this long is disabled (WEBHOOK_DISABLE_AFTER_HOURS). */
  disableAfterMs: number;
  /** How long the old secret keeps signing after a rotation (WEBHOOK_SECRET_GRACE_HOURS). */
  secretGraceMs: number;
  /** A claimed delivery's lease (WEBHOOK_LEASE_MS): a dead instance's work is claimed again after it. */
  leaseMs: number;
  /** Safety-net poll for due deliveries (WEBHOOK_POLL_MS); new deliveries wake the workers at once. */
  pollMs: number;
}

export interface EventStreamConfig {
  /** A `: heartbeat` comment this often (SSE_HEARTBEAT_MS); credentials are re-checked as often. */
  heartbeatMs: number;
  /** The `retry:` hint: how long a client waits before reconnecting (SSE_RETRY_MS). */
  retryMs: number;
  /** Bytes a client may leave unread in its socket buffer before it is cut off (SSE_MAX_BUFFERED_BYTES). */
  maxBufferedBytes: number;
  /** Open streams per practice on one instance (SSE_MAX_CONNECTIONS_PER_PRACTICE); one more is a 429. */
  maxConnectionsPerPractice: number;
  /** Open streams on one instance (SSE_MAX_CONNECTIONS); one more is a 503. */
  maxConnections: number;
}

export interface ReconcileConfig {
  /** Worker threads (RECONCILE_WORKERS); undefined: one less than the cores, at least one. */
  workers: number | undefined;
  /** Jobs that may wait for a worker (RECONCILE_QUEUE_LIMIT); one more is a 503. */
  queueLimit: number;
  /** Longest a job may run before its worker is stopped (RECONCILE_TIMEOUT_MS). */
  timeoutMs: number;
  /** Consecutive failures that open the breaker (RECONCILE_BREAKER_FAILURES). */
  breakerFailureThreshold: number;
  /** OPEN -> HALF_OPEN after this long (RECONCILE_BREAKER_RECOVERY_MS). */
  breakerRecoveryMs: number;
  /** Breaker monitor interval (RECONCILE_BREAKER_MONITOR_MS). */
  breakerMonitorMs: number;
  /** Body limit of POST /v1/ai/reconcile (RECONCILE_BODY_LIMIT_BYTES): 10,000 records fit. */
  bodyLimitBytes: number;
  /** Background jobs of /v2/reconciliations (docs/reconciliation.md). */
  jobs: ReconcileJobsConfig;
}

export interface ReconcileJobsConfig {
  /** Run jobs on this instance (RECONCILE_JOBS_ENABLED, default true). */
  enabled: boolean;
  /** A claimed job's lease (RECONCILE_JOB_LEASE_MS), renewed while it runs; a dead instance's job is re-run after it. */
  leaseMs: number;
  /** How often an idle instance looks for jobs (RECONCILE_JOB_POLL_MS). */
  pollMs: number;
  /** Jobs a practice may have queued or running (RECONCILE_JOB_QUEUE_LIMIT); one more is a 503. */
  queueLimit: number;
  /** Longest one job's matching may run (RECONCILE_JOB_TIMEOUT_MS). */
  timeoutMs: number;
  /** Data rows and bytes per uploaded file (RECONCILE_JOB_MAX_ROWS, RECONCILE_JOB_MAX_BYTES). */
  maxRows: number;
  maxBytes: number;
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

/** Several refusals at once (production settings): one line each, all shown before the process stops. */
export class ConfigRefusals extends ConfigError {
  constructor(readonly refusals: ConfigError[]) {
    super(refusals[0]!.variable, 'refused');
    this.message = refusals.map((refusal) => refusal.message).join('\n');
    this.name = 'ConfigRefusals';
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

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A list of durations like "30s,2m,10m,1h" (milliseconds without a unit). */
function readDurations(env: Env, name: string, fallback: string): number[] {
  const raw = readString(env, name) ?? fallback;
  return raw.split(',').map((entry) => {
    const match = /^(\d+)(ms|s|m|h|d)?$/.exec(entry.trim());
    if (match === null) throw new ConfigError(name, `must be durations like 30s,2m,1h separated by commas, got "${entry.trim()}"`);
    const ms = Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']!;
    if (ms > 7 * 86_400_000) throw new ConfigError(name, `a wait may be at most 7 days, got "${entry.trim()}"`);
    return ms;
  });
}

/** The nominal waits between attempts: ~0, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h, 24 h, 24 h (about 3 days in all). */
export const DEFAULT_WEBHOOK_RETRY_SCHEDULE = '30s,2m,10m,30m,1h,3h,6h,12h,24h,24h';

function readWebhookConfig(env: Env, nodeEnv: NodeEnv): WebhookConfig {
  const allowLoopback = readBoolean(env, 'WEBHOOK_ALLOW_LOOPBACK', false);
  // Loopback and private targets are how SSRF reaches a clinic's internal network.
  if (allowLoopback && nodeEnv === 'production') throw new ConfigError('WEBHOOK_ALLOW_LOOPBACK', 'must not be true when NODE_ENV=production');
  const timeoutMs = readInteger(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000);
  const leaseMs = readInteger(env, 'WEBHOOK_LEASE_MS', 60_000, 1000, 3_600_000);
  if (leaseMs <= timeoutMs) throw new ConfigError('WEBHOOK_LEASE_MS', `must be longer than WEBHOOK_TIMEOUT_MS (${timeoutMs}), got ${leaseMs}`);
  const retryScheduleMs = readDurations(env, 'WEBHOOK_RETRY_SCHEDULE', DEFAULT_WEBHOOK_RETRY_SCHEDULE);
  if (retryScheduleMs.length > 30) throw new ConfigError('WEBHOOK_RETRY_SCHEDULE', `at most 30 retries, got ${retryScheduleMs.length}`);
  return {
    workerEnabled: readBoolean(env, 'WEBHOOK_WORKER_ENABLED', true),
    allowLoopback,
    timeoutMs,
    concurrency: readInteger(env, 'WEBHOOK_CONCURRENCY', 32, 1, 1000),
    retryScheduleMs,
    disableAfterMs: readInteger(env, 'WEBHOOK_DISABLE_AFTER_HOURS', 120, 1, 90 * 24) * 3_600_000,
    secretGraceMs: readInteger(env, 'WEBHOOK_SECRET_GRACE_HOURS', 24, 0, 30 * 24) * 3_600_000,
    leaseMs,
    pollMs: readInteger(env, 'WEBHOOK_POLL_MS', 1000, 10, 60_000),
  };
}

function readDate(env: Env, name: string): string | null {
  const raw = readString(env, name);
  if (raw === undefined) return null;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(raw) || Number.isNaN(Date.parse(`${raw}T00:00:00Z`))) {
    throw new ConfigError(name, `must be a date like 2027-12-31, got "${raw}"`);
  }
  return raw;
}

/** A version's lifecycle dates; deprecation can't come after the sunset it announces. */
function readVersionDates(env: Env, version: 'V1' | 'V2'): { deprecationDate: string | null; sunsetDate: string | null } {
  const deprecationDate = readDate(env, `${version}_DEPRECATION_DATE`);
  const sunsetDate = readDate(env, `${version}_SUNSET_DATE`);
  if (deprecationDate !== null && sunsetDate !== null && deprecationDate > sunsetDate) {
    throw new ConfigError(`${version}_DEPRECATION_DATE`, `must not be after ${version}_SUNSET_DATE (${sunsetDate}), got ${deprecationDate}`);
  }
  return { deprecationDate, sunsetDate };
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

/** The metrics listener: loopback by default, since the figures describe the clinic's traffic. */
function readMetricsConfig(env: Env, publicPort: number): MetricsConfig {
  const port = readInteger(env, 'METRICS_PORT', 9464, 0, 65535);
  // Metrics never share the public listener: who can reach the API must not read its figures.
  if (port !== 0 && port === publicPort) throw new ConfigError('METRICS_PORT', `must differ from PORT (${publicPort}), got ${port}`);
  return { enabled: port !== 0, host: readString(env, 'METRICS_HOST') ?? '127.0.0.1', port };
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

/**
 * The session limits. The idle time can't be shorter than an access token's life: a client that
 * refreshes when its token runs out must still find its session, and then a session left alone is
 * entirely over (refresh refused, last access token expired) once the idle time has passed. The
 * lifetime can't be shorter than the idle time it caps.
 */
function readSessionLimits(env: Env, accessTokenTtlSeconds: number) {
  const sessionIdleTimeoutSeconds = readInteger(env, 'SESSION_IDLE_TIMEOUT_SECONDS', 15 * 60, 60, 86_400);
  if (sessionIdleTimeoutSeconds < accessTokenTtlSeconds) {
    throw new ConfigError('SESSION_IDLE_TIMEOUT_SECONDS', `must be at least ACCESS_TOKEN_TTL_SECONDS (${accessTokenTtlSeconds}), got ${sessionIdleTimeoutSeconds}`);
  }
  const sessionMaxLifetimeSeconds = readInteger(env, 'SESSION_MAX_LIFETIME_SECONDS', 12 * 3600, 300, 30 * 86_400);
  if (sessionMaxLifetimeSeconds < sessionIdleTimeoutSeconds) {
    throw new ConfigError('SESSION_MAX_LIFETIME_SECONDS', `must be at least SESSION_IDLE_TIMEOUT_SECONDS (${sessionIdleTimeoutSeconds}), got ${sessionMaxLifetimeSeconds}`);
  }
  return { sessionIdleTimeoutSeconds, sessionMaxLifetimeSeconds };
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
 * Outside production a missing secret is generated once and kept in DATA_DIR/.local-secrets.json
 * (mode 0600), so `npm start` needs no setup and sessions and MFA enrolments survive a restart.
 * A fixed, guessable default would be worse than none. Tests get a fresh random value.
 */
function localSecret(nodeEnv: NodeEnv, dataDir: string, name: string): string {
  if (nodeEnv === 'test') return randomBytes(32).toString('base64url');
  const file = join(dataDir, '.local-secrets.json');
  let secrets: Record<string, string> = {};
  if (existsSync(file)) secrets = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  if (!secrets[name]) {
    secrets[name] = randomBytes(32).toString('base64url');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  }
  return secrets[name]!;
}

const RATE_LIMIT_DEFAULTS: Record<RateLimitName, RateLimitRule & { env: string }> = {
  global: { env: 'RATE_LIMIT', max: 100, windowMs: 15 * 60_000 },
  login: { env: 'RATE_LIMIT_LOGIN', max: 5, windowMs: 15 * 60_000 },
  loginAccount: { env: 'RATE_LIMIT_LOGIN_ACCOUNT', max: 5, windowMs: 15 * 60_000 },
  reconcile: { env: 'RATE_LIMIT_RECONCILE', max: 10, windowMs: 60 * 60_000 },
  patients: { env: 'RATE_LIMIT_PATIENTS', max: 1000, windowMs: 15 * 60_000 },
  appointments: { env: 'RATE_LIMIT_APPOINTMENTS', max: 500, windowMs: 15 * 60_000 },
};

function readRateLimits(env: Env): RateLimits {
  const entries = Object.entries(RATE_LIMIT_DEFAULTS).map(([name, rule]) => [
    name,
    {
      max: readInteger(env, `${rule.env}_MAX`, rule.max, 1, 10_000_000),
      windowMs: readInteger(env, `${rule.env}_WINDOW_MS`, rule.windowMs, 1000, 7 * 86_400_000),
    },
  ]);
  return Object.fromEntries(entries) as RateLimits;
}

function readOrigins(env: Env, name: string): string[] {
  const raw = readString(env, name);
  if (raw === undefined) return [];
  return raw.split(',').map((entry) => {
    const value = entry.trim();
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new ConfigError(name, `"${value}" is not an origin like https://app.example.com`);
    }
    if (!['http:', 'https:'].includes(url.protocol) || url.origin !== value.replace(/\/$/, '')) {
      throw new ConfigError(name, `"${value}" is not an origin like https://app.example.com (no path, no wildcard)`);
    }
    return url.origin;
  });
}

function readTlsFiles(env: Env): { tlsCertFile: string | undefined; tlsKeyFile: string | undefined } {
  const tlsCertFile = readString(env, 'TLS_CERT_FILE');
  const tlsKeyFile = readString(env, 'TLS_KEY_FILE');
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new ConfigError(tlsCertFile === undefined ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE', 'must be set together with the other TLS_*_FILE');
  }
  for (const [name, file] of [['TLS_CERT_FILE', tlsCertFile], ['TLS_KEY_FILE', tlsKeyFile]] as const) {
    if (file !== undefined && !existsSync(file)) throw new ConfigError(name, `file not found: ${file}`);
  }
  return { tlsCertFile, tlsKeyFile };
}

export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = readEnum<NodeEnv>(env, 'NODE_ENV', ['development', 'test', 'production'], 'development');
  const dataDir = resolve(readString(env, 'DATA_DIR') ?? './data');
  const jwtSecret = readSecret(env, 'JWT_SECRET', nodeEnv, 32) ?? localSecret(nodeEnv, dataDir, 'JWT_SECRET');
  const jwtPreviousSecret = readString(env, 'JWT_PREVIOUS_SECRET');
  if (jwtPreviousSecret !== undefined && jwtPreviousSecret.length < 32) {
    throw new ConfigError('JWT_PREVIOUS_SECRET', 'must be at least 32 characters');
  }
  const encryptionKey =
    readSecret(env, 'ENCRYPTION_KEY', nodeEnv, 32) ?? localSecret(nodeEnv, dataDir, 'ENCRYPTION_KEY');
  const adminEmail = readString(env, 'MEDSPA_ADMIN_EMAIL');
  if (adminEmail !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(adminEmail)) {
    throw new ConfigError('MEDSPA_ADMIN_EMAIL', 'is not an email address');
  }
  const adminPassword = readString(env, 'MEDSPA_ADMIN_PASSWORD');
  if (adminPassword !== undefined && adminPassword.length < 8) {
    throw new ConfigError('MEDSPA_ADMIN_PASSWORD', 'must be at least 8 characters');
  }

  const accessTokenTtlSeconds = readInteger(env, 'ACCESS_TOKEN_TTL_SECONDS', 900, 60, 86_400);

  const config: Config = {
    nodeEnv,
    port: readInteger(env, 'PORT', 3000, 0, 65535),
    host: readString(env, 'HOST') ?? '0.0.0.0',
    dataDir,
    databaseUrl: readUrl(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    databasePoolSize: readInteger(env, 'DATABASE_POOL_SIZE', 10, 1, 200),
    redisUrl: readUrl(env, 'REDIS_URL', ['redis:', 'rediss:']),
    jwtSecret,
    jwtPreviousSecret,
    jwtIssuer: readString(env, 'JWT_ISSUER') ?? 'medspasync-pro',
    jwtAudience: readString(env, 'JWT_AUDIENCE') ?? 'medspasync-pro-api',
    accessTokenTtlSeconds,
    refreshTokenTtlSeconds: readInteger(env, 'REFRESH_TOKEN_TTL_SECONDS', 14 * 86_400, 300, 90 * 86_400),
    ...readSessionLimits(env, accessTokenTtlSeconds),
    loginLockoutThreshold: readInteger(env, 'LOGIN_LOCKOUT_THRESHOLD', 10, 3, 1000),
    loginLockoutMinutes: readInteger(env, 'LOGIN_LOCKOUT_MINUTES', 15, 1, 24 * 60),
    encryptionKey,
    phi: readPhiConfig(env, encryptionKey),
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
    rateLimits: readRateLimits(env),
    corsOrigins: readOrigins(env, 'CORS_ORIGINS'),
    requestTimeoutMs: readInteger(env, 'REQUEST_TIMEOUT_MS', 30_000, 100, 600_000),
    httpHeadersTimeoutMs: readInteger(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 1000, 600_000),
    httpRequestTimeoutMs: readInteger(env, 'HTTP_REQUEST_TIMEOUT_MS', 60_000, 1000, 3_600_000),
    httpKeepAliveTimeoutMs: readInteger(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000, 600_000),
    ...readTlsFiles(env),
    databaseConnectTimeoutMs: readInteger(env, 'DATABASE_CONNECT_TIMEOUT_MS', 2000, 100, 60_000),
    versionDates: {
      v1: readVersionDates(env, 'V1'),
      v2: readVersionDates(env, 'V2'),
    },
    shutdownGraceMs: readInteger(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 300_000),
    shutdownDrainMs: readInteger(env, 'SHUTDOWN_DRAIN_MS', 0, 0, 60_000),
    publicBaseUrl: readUrl(env, 'PUBLIC_BASE_URL', ['http:', 'https:']),
    reconcile: {
      workers: readString(env, 'RECONCILE_WORKERS') === undefined ? undefined : readInteger(env, 'RECONCILE_WORKERS', 1, 1, 64),
      queueLimit: readInteger(env, 'RECONCILE_QUEUE_LIMIT', 4, 0, 1000),
      timeoutMs: readInteger(env, 'RECONCILE_TIMEOUT_MS', 30_000, 1000, 600_000),
      breakerFailureThreshold: readInteger(env, 'RECONCILE_BREAKER_FAILURES', 5, 1, 100),
      breakerRecoveryMs: readInteger(env, 'RECONCILE_BREAKER_RECOVERY_MS', 60_000, 1000, 3_600_000),
      breakerMonitorMs: readInteger(env, 'RECONCILE_BREAKER_MONITOR_MS', 10_000, 1000, 600_000),
      bodyLimitBytes: readInteger(env, 'RECONCILE_BODY_LIMIT_BYTES', 25 * 1_048_576, 1_048_576, 200 * 1_048_576),
      jobs: {
        enabled: readBoolean(env, 'RECONCILE_JOBS_ENABLED', true),
        leaseMs: readInteger(env, 'RECONCILE_JOB_LEASE_MS', 30_000, 200, 3_600_000),
        pollMs: readInteger(env, 'RECONCILE_JOB_POLL_MS', 2000, 50, 600_000),
        queueLimit: readInteger(env, 'RECONCILE_JOB_QUEUE_LIMIT', 5, 1, 1000),
        timeoutMs: readInteger(env, 'RECONCILE_JOB_TIMEOUT_MS', 600_000, 1000, 3_600_000),
        maxRows: readInteger(env, 'RECONCILE_JOB_MAX_ROWS', 200_000, 1, 200_000),
        maxBytes: readInteger(env, 'RECONCILE_JOB_MAX_BYTES', 100 * 1_048_576, 1024, 100 * 1_048_576),
      },
    },
    events: {
      retentionDays: readInteger(env, 'OUTBOX_RETENTION_DAYS', 30, 1, 3650),
      webhooks: readWebhookConfig(env, nodeEnv),
      stream: {
        heartbeatMs: readInteger(env, 'SSE_HEARTBEAT_MS', 15_000, 50, 300_000),
        retryMs: readInteger(env, 'SSE_RETRY_MS', 3000, 100, 600_000),
        maxBufferedBytes: readInteger(env, 'SSE_MAX_BUFFERED_BYTES', 1_048_576, 1024, 256 * 1_048_576),
        maxConnectionsPerPractice: readInteger(env, 'SSE_MAX_CONNECTIONS_PER_PRACTICE', 100, 1, 100_000),
        maxConnections: readInteger(env, 'SSE_MAX_CONNECTIONS', 5000, 1, 1_000_000),
      },
    },
    ...readHipaa(env),
    metrics: readMetricsConfig(env, readInteger(env, 'PORT', 3000, 0, 65535)),
  };
  const refusals = productionRefusals(config, readBoolean(env, 'ALLOW_EMBEDDED_DATABASE', false));
  if (refusals.length > 0) throw new ConfigRefusals(refusals);
  return config;
}

const isLoopbackHost = (host: string) => host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/**
 * Settings that are right on a laptop and wrong for a clinic's production server: refused when
 * NODE_ENV=production, each with its own line, so an operator fixes them all in one go.
 */
export function productionRefusals(config: Config, allowEmbeddedDatabase: boolean): ConfigError[] {
  if (config.nodeEnv !== 'production') return [];
  const refusals: ConfigError[] = [];
  if (config.databaseUrl === undefined && !allowEmbeddedDatabase) {
    refusals.push(
      new ConfigError(
        'DATABASE_URL',
        'is required when NODE_ENV=production: the embedded PGlite runs one query at a time in one process ' +
          '(set ALLOW_EMBEDDED_DATABASE=true to run it anyway)',
      ),
    );
  }
  if (config.tlsCertFile === undefined && config.trustProxy === false && !isLoopbackHost(config.host)) {
    refusals.push(
      new ConfigError(
        'HOST',
        `${config.host} would serve PHI over plain HTTP when NODE_ENV=production: set TLS_CERT_FILE and TLS_KEY_FILE, ` +
          'or terminate TLS at a proxy and set TRUST_PROXY to it, or listen on 127.0.0.1 only',
      ),
    );
  }
  return refusals;
}

/** A config for tests and scripts: defaults plus overrides, never reading the real environment. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  // A fixed PHI master key, like the JWT secret: apps built one after the other on one test
  // database must open each other's rows (a wrong master key stops the start).
  return {
    ...loadConfig({ NODE_ENV: 'test', JWT_SECRET: 'test-secret-that-is-at-least-32-characters-long', PHI_MASTER_KEY: 'test-phi-master-key-that-is-at-least-32-characters' }),
    ...overrides,
  };
}
