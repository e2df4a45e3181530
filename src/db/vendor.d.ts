// pg's own value mapping (the one pool.query applies to parameters), not covered by @types/pg.
declare module 'pg/lib/utils.js' {
  /** A JavaScript value as PostgreSQL's text format: string, Buffer or null (Dates, arrays, JSON…). */
  export function prepareValue(value: unknown): string | Buffer | null;
}
