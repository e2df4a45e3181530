// What every route declares in its `config`: either the permission it needs or that it is public.
// The authorization guard reads these, and a test walks all routes to check none forgot.
declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without credentials (health, docs, login, refresh). */
    public?: boolean;
    /** The RBAC permission required, e.g. "read:patients" (blueprint 2.2). */
    permission?: string;
    /** false: never rate limited. A rule: replaces the global limit for this route. */
    rateLimit?: false | { name: string };
    /** Larger body limit routes (import, reconcile) declare their own. */
  }
}
export {};
