// Parameters written into SQL text as literals, for the one place that needs it: a scoped read
// sent as a single simple-protocol message (BEGIN; scope; statement; COMMIT), which cannot carry
// bind parameters. Strings go through pg's escapeLiteral (quotes and backslashes escaped, E'' form
// when needed); every other type is rendered from a closed list, and anything else is refused.
import pg from 'pg';

/** PostgreSQL text can't hold NUL, and in a simple-protocol message NUL would end the SQL early. */
export class NulCharacterError extends Error {
  readonly code = '22021'; // character_not_in_repertoire: what PostgreSQL itself answers
  constructor() {
    super('text with a NUL character cannot be written into SQL');
  }
}

export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') {
    if (value.includes('\u0000')) throw new NulCharacterError();
    return pg.escapeLiteral(value);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('cannot write a non-finite number into SQL');
    return value < 0 ? `(${value})` : String(value);
  }
  if (typeof value === 'bigint') return value < 0n ? `(${value})` : value.toString();
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Date) return pg.escapeLiteral(value.toISOString());
  if (Array.isArray(value)) return value.length === 0 ? "'{}'" : `ARRAY[${value.map(sqlLiteral).join(', ')}]`;
  if (typeof value === 'object') return sqlLiteral(JSON.stringify(value));
  throw new TypeError(`cannot write a ${typeof value} into SQL`);
}

/** Replaces $1…$n with literals in one pass (a literal's own text is never rescanned). */
export function inlineParameters(sql: string, params: readonly unknown[]): string {
  return sql.replace(/\$(\d+)/g, (_match, digits: string) => {
    const index = Number(digits) - 1;
    if (index < 0 || index >= params.length) throw new RangeError(`SQL refers to $${digits} but has ${params.length} parameters`);
    return sqlLiteral(params[index]);
  });
}
