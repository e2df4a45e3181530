// What every route declares in its `config`: either the permission it needs or that it is public.
// The authorization guard reads these, and a test walks all routes to check none forgot.
declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without credentials (health, docs, login, refresh). */
    public?: boolean;
    /** Any signed-in person acting on their own account (logout, MFA, password); API keys refused. */
    selfService?: boolean;
    /** The RBAC permission required, e.g. "read:patients" (blueprint 2.2). */
    permission?: string;
    /** Instead of `permission`: at least one of these is required, and the handler narrows further
     *  (the event stream, whose events each follow their own resource's read permission). */
    permissionOneOf?: readonly string[];
    /** false: never rate limited (health only). { name }: count against that budget instead of
     *  the one derived from the path (src/http/rate-limit.ts bucketForPath). */
    rateLimit?: false | { name: import('../config.js').RateLimitName };
    /** Per-request deadline override in ms (REQUEST_TIMEOUT_MS otherwise); false for streams (SSE). */
    requestTimeoutMs?: number | false;
    /** Idempotency-Key handling (src/http/idempotency.ts). POSTs needing a write:* permission honour
     *  it by default, others only with true (their responses may carry secrets); false opts out;
     *  'transactional': the handler stores its response with completeIdempotentRequest() in its own
     *  transaction (crash-safe; a lapsed claim may be taken over). */
    idempotent?: boolean | 'transactional';
    /** The body may be left out (logout): an empty body is then no body, even with a JSON
     *  Content-Type, instead of 400 INVALID_JSON; the route's preValidation supplies the default. */
    optionalBody?: boolean;
    /** For an idempotent route whose answer has no Location: the ids of the records a replay of
     *  that answer shows again, for the replay's audit event (e.g. a reconciliation's matches). */
    replayedIds?: (storedBody: unknown) => string[];
    /** Larger body limit routes (import, reconcile) declare their own. */
  }
}
export {};
