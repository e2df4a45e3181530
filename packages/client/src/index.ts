// The typed client of the MedSpaSync Pro API. Paths, parameters, bodies and answers are the types
// generated from the served OpenAPI documents (v1.ts, v2.ts: `npm run sdk:generate`); requests go
// through openapi-fetch, and through the transport (transport.ts) for credentials and retries.
//
//   const api = createClient({ baseUrl: 'http://localhost:3000', version: 'v1', auth: { email, password } });
//   const { data: patients } = await api.get('/patients', { params: { query: { limit: 20 } } });
import createFetchClient, { type Client, type FetchResponse, type HeadersOptions, type MaybeOptionalInit } from 'openapi-fetch';
import type { HttpMethod, MediaType, PathsWithMethod, RequiredKeysOf } from 'openapi-typescript-helpers';
import { ApiError } from './errors.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
import { Transport, transportDefaults, type Auth, type Tokens } from './transport.js';
import type { paths as V1Paths } from './v1.js';
import type { paths as V2Paths } from './v2.js';

export { ApiError, type ErrorDetail, type ErrorEnvelope } from './errors.js';
export { DEFAULT_RETRY_POLICY, isSafeToRetry, parseRetryAfter, retryDelay, type RetryPolicy } from './retry.js';
export type { Auth, MfaCode, Tokens } from './transport.js';
export type * as v1 from './v1.js';
export type * as v2 from './v2.js';

export type ApiVersion = 'v1' | 'v2';
export interface VersionPaths {
  v1: V1Paths;
  v2: V2Paths;
}

export interface ClientOptions<V extends ApiVersion> {
  /** The server's root (scheme, host, port), without the version: http://localhost:3000. */
  baseUrl: string;
  version: V;
  /** An API key, an email and password (with an MFA code when the account has MFA), or a token pair from an earlier login. */
  auth?: Auth;
  /** Called with every new token pair (after a login and after each refresh, which rotates the refresh token): persist it here. */
  onTokens?: (tokens: Tokens) => void | Promise<void>;
  /** Bounds of the 429/503 retries; defaults: 3 sends, 10 s of waiting in all. */
  retry?: Partial<RetryPolicy>;
  /** Headers sent with every request (an X-Correlation-Id, say). */
  headers?: HeadersOptions;
  /** The fetch to send with (tests count requests with it); default: globalThis.fetch. */
  fetch?: (request: Request) => Promise<Response>;
  /** How the client waits between retries; default: setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

type Paths = Record<string, Record<HttpMethod, {}>>;

/** The operation of a path and method (openapi-fetch indexes the same way). */
type Operation<P, Path extends keyof P, M extends HttpMethod> = M extends keyof P[Path] ? Extract<P[Path][M], Record<string | number, any>> : never;

/** `idempotencyKey` exists only for operations that document the Idempotency-Key header. */
type IdempotencyOption<Operation> = Operation extends { parameters: { header?: infer Header } }
  ? [NonNullable<Header>] extends [never]
    ? { idempotencyKey?: never }
    : 'idempotency-key' extends keyof NonNullable<Header>
      ? {
          /** Sent as Idempotency-Key; `true` generates a UUID for this call. A retry of the call (503) sends the same key. */
          idempotencyKey?: string | true;
        }
      : { idempotencyKey?: never }
  : { idempotencyKey?: never };

type CallArgs<Operation, Init> =
  RequiredKeysOf<Init> extends never ? [(Init & IdempotencyOption<Operation>)?] : [Init & IdempotencyOption<Operation>];

/** What a call resolves to: the success body (undefined for a 204) and the response (headers such as Location). */
export interface Answer<Data> {
  data: Data;
  response: Response;
}

type SuccessData<Result> = Result extends { data: infer Data } ? ([Data] extends [never] ? undefined : Data) : never;

type CallMethod<P extends {}, M extends HttpMethod> = <
  Path extends PathsWithMethod<P, M>,
  Init extends MaybeOptionalInit<P[Path], M & keyof P[Path]>,
>(
  url: Path,
  ...init: CallArgs<Operation<P, Path, M>, Init>
) => Promise<Answer<SuccessData<FetchResponse<Operation<P, Path, M>, Init, MediaType>>>>;

export interface MedSpaClient<V extends ApiVersion> {
  /** Each resolves with the success body, or rejects with an ApiError carrying the error envelope. */
  get: CallMethod<VersionPaths[V], 'get'>;
  post: CallMethod<VersionPaths[V], 'post'>;
  put: CallMethod<VersionPaths[V], 'put'>;
  patch: CallMethod<VersionPaths[V], 'patch'>;
  delete: CallMethod<VersionPaths[V], 'delete'>;
  /** openapi-fetch's own client on the same transport: resolves with `{ data } | { error }` instead of throwing. */
  raw: Client<VersionPaths[V]>;
  /** Logs in now with the configured email and password (otherwise the first request does). */
  login(): Promise<Tokens>;
  /** Ends the session on the server and forgets the tokens. */
  logout(): Promise<void>;
  /** The current token pair; null before the first login and with an API key. */
  readonly tokens: Tokens | null;
}

function generatedKey(): string {
  return globalThis.crypto.randomUUID();
}

function callMethod(raw: Client<Paths>, method: HttpMethod) {
  return async (url: string, init: Record<string, unknown> & { idempotencyKey?: string | true; headers?: HeadersOptions } = {}) => {
    const { idempotencyKey, ...rest } = init;
    if (idempotencyKey !== undefined) {
      const headers = new Headers(rest.headers as ConstructorParameters<typeof Headers>[0]);
      headers.set('idempotency-key', idempotencyKey === true ? generatedKey() : idempotencyKey);
      rest.headers = headers;
    }
    const result = await (raw.request as (m: HttpMethod, u: string, i: object) => Promise<{ data?: unknown; error?: unknown; response: Response }>)(
      method,
      url,
      rest,
    );
    if (!result.response.ok) throw new ApiError(result.response.status, result.error, result.response.headers);
    return { data: result.data, response: result.response };
  };
}

export function createClient<V extends ApiVersion>(options: ClientOptions<V>): MedSpaClient<V> {
  const defaults = transportDefaults();
  const versionUrl = `${options.baseUrl.replace(/\/+$/, '')}/${options.version}`;
  const transport = new Transport({
    versionUrl,
    auth: options.auth,
    retry: { ...DEFAULT_RETRY_POLICY, ...options.retry },
    onTokens: options.onTokens,
    fetch: options.fetch ?? defaults.fetch,
    sleep: options.sleep ?? defaults.sleep,
  });
  const raw = createFetchClient<Paths>({
    baseUrl: versionUrl,
    headers: options.headers,
    fetch: transport.send,
  });
  return {
    get: callMethod(raw, 'get'),
    post: callMethod(raw, 'post'),
    put: callMethod(raw, 'put'),
    patch: callMethod(raw, 'patch'),
    delete: callMethod(raw, 'delete'),
    raw,
    login: () => transport.login(),
    logout: () => transport.logout(),
    get tokens() {
      return transport.currentTokens;
    },
  } as unknown as MedSpaClient<V>;
}
