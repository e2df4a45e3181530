// The fetch that openapi-fetch sends every request through: it adds the credentials, logs in when
// it has to, refreshes once on a 401 (one refresh shared by every request that got one), and sends
// again after a 429/503 within the retry policy (retry.ts). The rules are in packages/client/README.md.
import { ApiError } from './errors.js';
import { DEFAULT_RETRY_POLICY, retryDelay, type RetryPolicy } from './retry.js';
import type { components } from './v1.js';

type LoginAnswer = { accessToken: string; refreshToken: string; expiresIn: number; user: components['schemas']['User'] };

/** The pair the server hands out at login and at every refresh (the refresh token rotates). */
export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** Access-token lifetime in seconds, as the server said (absent when the caller supplied the pair). */
  expiresIn?: number;
}

/** A TOTP code, or a function asked for one each time the client logs in (codes expire). */
export type MfaCode = string | (() => string | Promise<string>);

export type Auth =
  | { apiKey: string }
  | { email: string; password: string; mfaCode?: MfaCode }
  | { accessToken?: string; refreshToken: string };

export interface TransportOptions {
  /** The version's root, e.g. http://localhost:3000/v1. */
  versionUrl: string;
  auth: Auth | undefined;
  retry: RetryPolicy;
  /** Called with every new pair (login, refresh), before the request that needed it goes on. */
  onTokens: ((tokens: Tokens) => void | Promise<void>) | undefined;
  fetch: (request: Request) => Promise<Response>;
  sleep: (ms: number) => Promise<void>;
}

/** Paths that take no token and whose 401 means "wrong credentials", never "refresh and try again". */
const CREDENTIAL_PATHS = /\/auth\/(login|refresh)$/;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function transportDefaults(): Pick<TransportOptions, 'retry' | 'fetch' | 'sleep'> {
  return { retry: DEFAULT_RETRY_POLICY, fetch: (request) => globalThis.fetch(request), sleep: defaultSleep };
}

export class Transport {
  private tokens: Tokens | null;
  /** The login or refresh in flight: every request that needs a token meanwhile waits for this one. */
  private renewal: Promise<Tokens> | null = null;
  /** Why the session can't go on (a refused refresh, with no password to log in again). */
  private ended: ApiError | null = null;

  constructor(private readonly options: TransportOptions) {
    const auth = options.auth;
    this.tokens = auth !== undefined && 'refreshToken' in auth ? { accessToken: auth.accessToken ?? '', refreshToken: auth.refreshToken } : null;
  }

  /** The current pair, null before the first login (and always with an API key). */
  get currentTokens(): Tokens | null {
    return this.tokens === null || this.tokens.accessToken === '' ? null : { ...this.tokens };
  }

  /** openapi-fetch's `fetch`: one call of the API, with its retries and at most one refresh. */
  readonly send = async (request: Request): Promise<Response> => {
    const refreshable = !CREDENTIAL_PATHS.test(new URL(request.url).pathname);
    let refreshed = false;
    for (;;) {
      const headers = new Headers(request.headers);
      const sentToken = refreshable ? await this.authorize(headers) : null;
      const response = await this.sendWithRetries(new Request(request.clone(), { headers }));
      if (response.status !== 401 || sentToken === null || refreshed) return response;
      // The token was refused (expired, or cut off by a logout elsewhere): renew once and resend.
      await response.body?.cancel();
      refreshed = true;
      await this.renewAfterRefusal(sentToken);
    }
  };

  /** Logs in with the configured email and password now (otherwise the first request does). */
  async login(): Promise<Tokens> {
    return this.renew(() => this.requestLogin());
  }

  /** Ends the session on the server (its refresh token stops working) and forgets the pair. */
  async logout(): Promise<void> {
    const tokens = this.tokens;
    if (tokens === null || tokens.accessToken === '') return;
    const response = await this.sendWithRetries(
      jsonRequest(`${this.options.versionUrl}/auth/logout`, { refreshToken: tokens.refreshToken }, { authorization: `Bearer ${tokens.accessToken}` }),
    );
    if (!response.ok && response.status !== 401) throw await ApiError.from(response);
    await response.body?.cancel();
    this.tokens = null;
  }

  /** Sets this client's credential header; returns the access token sent, null for an API key. */
  private async authorize(headers: Headers): Promise<string | null> {
    const auth = this.options.auth;
    if (auth === undefined) return null;
    if ('apiKey' in auth) {
      headers.set('x-api-key', auth.apiKey);
      return null;
    }
    const accessToken = await this.accessToken();
    headers.set('authorization', `Bearer ${accessToken}`);
    return accessToken;
  }

  private async accessToken(): Promise<string> {
    if (this.renewal !== null) return (await this.renewal).accessToken;
    if (this.ended !== null) throw this.ended;
    if (this.tokens !== null && this.tokens.accessToken !== '') return this.tokens.accessToken;
    // No access token yet: log in with the password, or exchange the refresh token we were given.
    return (await this.renew(() => (this.tokens === null ? this.requestLogin() : this.requestRefresh(this.tokens.refreshToken)))).accessToken;
  }

  private async renewAfterRefusal(refusedToken: string): Promise<void> {
    if (this.renewal !== null) {
      await this.renewal;
      return;
    }
    // Another request already renewed the pair since this one was sent: just send again.
    if (this.tokens !== null && this.tokens.accessToken !== refusedToken) return;
    const tokens = this.tokens;
    await this.renew(() => (tokens === null ? this.requestLogin() : this.requestRefresh(tokens.refreshToken)));
  }

  /** Runs one login or refresh at a time; callers arriving meanwhile share its outcome. */
  private renew(obtain: () => Promise<Tokens>): Promise<Tokens> {
    this.renewal ??= (async () => {
      try {
        const tokens = await obtain();
        this.tokens = tokens;
        this.ended = null;
        await this.options.onTokens?.({ ...tokens });
        return tokens;
      } finally {
        this.renewal = null;
      }
    })();
    return this.renewal;
  }

  private async requestLogin(): Promise<Tokens> {
    const auth = this.options.auth;
    if (auth === undefined || !('email' in auth)) throw this.ended ?? new ApiError(401, null);
    const mfaToken = typeof auth.mfaCode === 'function' ? await auth.mfaCode() : auth.mfaCode;
    const body = { email: auth.email, password: auth.password, ...(mfaToken === undefined ? {} : { mfaToken }) };
    return this.exchange(`${this.options.versionUrl}/auth/login`, body);
  }

  private async requestRefresh(refreshToken: string): Promise<Tokens> {
    try {
      return await this.exchange(`${this.options.versionUrl}/auth/refresh`, { refreshToken });
    } catch (error) {
      // The refresh token is spent or the session ended. With a password the next call logs in
      // again; with only a token pair every later call fails with the server's reason.
      if (error instanceof ApiError && error.status === 401) {
        this.tokens = null;
        if (!('email' in (this.options.auth ?? {}))) this.ended = error;
      }
      throw error;
    }
  }

  private async exchange(url: string, body: object): Promise<Tokens> {
    const response = await this.sendWithRetries(jsonRequest(url, body));
    if (!response.ok) throw await ApiError.from(response);
    const answer = (await response.json()) as LoginAnswer;
    return { accessToken: answer.accessToken, refreshToken: answer.refreshToken, expiresIn: answer.expiresIn };
  }

  /** Sends, and sends again while retry.ts says it is safe and within the policy. */
  private async sendWithRetries(request: Request): Promise<Response> {
    const { retry, sleep } = this.options;
    const hasIdempotencyKey = request.headers.has('idempotency-key');
    let waitedMs = 0;
    for (let attempts = 1; ; attempts += 1) {
      // A clone per send: a body can be read once, and a retry must send it again.
      const response = await this.options.fetch(request.clone());
      const delay = retryDelay(
        { status: response.status, method: request.method, hasIdempotencyKey, retryAfter: response.headers.get('retry-after'), attempts, waitedMs },
        retry,
      );
      if (delay === null) return response;
      await response.body?.cancel();
      await sleep(delay);
      waitedMs += delay;
    }
  }
}

function jsonRequest(url: string, body: object, headers: Record<string, string> = {}): Request {
  return new Request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}
